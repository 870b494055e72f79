"""``hamnet predict`` writes exactly what model.predict returns; every command's bad input is
one ``hamnet CMD: error: ...`` line with exit status 2 (unreadable files, NaN coordinates)."""

import numpy as np
import pytest

from hamnet.cli import main
from hamnet.testing import WATER_POS, WATER_Z

OH = "2\nhydroxyl\nO 0 0 0\nH 0 0 0.97\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, water_xyz, tiny_model, tiny_model_file):
    d = tmp_path_factory.mktemp("predict")
    (d / "model.pt").write_bytes(tiny_model_file.read_bytes())
    (d / "water.xyz").write_text(water_xyz.read_text())
    (d / "oh.xyz").write_text(OH)
    (d / "hcl.xyz").write_text("2\n\nH 0 0 0\nCl 0 0 1.3\n")
    return d, tiny_model


def test_predict_writes_npy_and_npz(files, capsys):
    d, model = files
    assert main(["predict", str(d / "water.xyz"), "--model", str(d / "model.pt"), "--out", str(d / "F.npy")]) == 0
    F = np.load(d / "F.npy")
    expected = model.predict((WATER_Z, WATER_POS))
    assert F.dtype == np.float64 and F.shape == (7, 7) and np.abs(F - expected).max() < 1e-6
    both = [str(d / "water.xyz"), str(d / "oh.xyz")]
    assert main(["predict", *both, "--model", str(d / "model.pt"), "--out", str(d / "all.npz")]) == 0
    with np.load(d / "all.npz") as z:
        assert sorted(z.files) == ["oh.xyz", "water.xyz"]
        assert np.abs(z["water.xyz"] - F).max() < 1e-6 and z["oh.xyz"].shape == (6, 6)
    assert "wrote" in capsys.readouterr().out
    assert not [p for p in d.iterdir() if ".tmp-" in p.name]


def test_predict_bad_input_exits_2(files, capsys):
    d, _ = files
    assert main(["predict", str(d / "hcl.xyz"), "--model", str(d / "model.pt"), "--out", str(d / "x.npy")]) == 2
    assert "Cl not supported" in capsys.readouterr().err
    both = [str(d / "water.xyz"), str(d / "oh.xyz")]
    assert main(["predict", *both, "--model", str(d / "model.pt"), "--out", str(d / "x.npy")]) == 2
    assert main(["predict", str(d / "water.xyz"), "--model", str(d / "water.xyz"), "--out", str(d / "x.npy")]) == 2
    assert "not a readable hamnet model" in capsys.readouterr().err
    assert not (d / "x.npy").exists()


def test_predict_refuses_a_file_that_is_not_a_geometry(files, capsys):
    d, _ = files
    (d / "notes.txt").write_text("this is not a molecule\n")
    (d / "broken.xyz").write_text("3\nwater\nO 0 0\n")
    for name in ("notes.txt", "broken.xyz", "missing.xyz"):
        assert main(["predict", str(d / name), "--model", str(d / "model.pt"), "--out", str(d / "x.npy")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hamnet predict: error: ") and "Traceback" not in err and err.count("\n") == 1, err
        assert name in err
    assert not (d / "x.npy").exists()


def test_guess_refuses_nan_coordinates_before_any_scf(files, capsys):
    d, _ = files
    lines = (d / "water.xyz").read_text().splitlines()
    lines[2] = "O 0.0 0.0 nan"
    (d / "nan.xyz").write_text("\n".join(lines) + "\n")
    assert main(["guess", str(d / "nan.xyz"), "--model", str(d / "model.pt"), "--xc", "HF"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hamnet guess: error: ") and "non-finite (NaN or inf) coordinates for atom(s) [0]" in err
    assert "singular" not in err


def test_every_command_error_is_one_line_with_exit_2(files, capsys):
    d, _ = files
    cases = [
        ["guess", str(d / "water.xyz"), "--model", str(d / "missing.pt")],
        ["eval", str(d / "no-run-dir")],
        ["train", str(d / "missing.yaml")],
        ["predict", str(d / "water.xyz"), "--model", str(d / "model.pt"), "--out", str(d / "F.txt")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"hamnet {argv[0]}: error: ") and err.count("\n") == 1, err


def test_quiet_flag_and_its_old_spelling(files):
    d, _ = files
    out = d / "q.npy"
    for flag in ("--quiet", "--no-progress"):
        assert main(["predict", str(d / "water.xyz"), "--model", str(d / "model.pt"), "--out", str(out), flag]) == 0
