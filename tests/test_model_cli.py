"""``hamnet predict``: the CLI writes exactly what model.predict returns."""

import numpy as np
import pytest
import torch

from hamnet.cli import main
from hamnet.model import build_model, save_model

WATER = "3\nwater\nO 0.0 0.0 0.117\nH 0.0 0.757 -0.469\nH 0.0 -0.757 -0.469\n"
OH = "2\nhydroxyl\nO 0 0 0\nH 0 0 0.97\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    model = build_model("sto-3g", ["H", "O"], num_channels=2, radial_hidden=8, tracegrad_hidden=8, tracegrad_dim=4)
    save_model(model, d / "model.pt")
    (d / "water.xyz").write_text(WATER)
    (d / "oh.xyz").write_text(OH)
    (d / "hcl.xyz").write_text("2\n\nH 0 0 0\nCl 0 0 1.3\n")
    return d, model


def test_predict_writes_npy_and_npz(files, capsys):
    d, model = files
    assert main(["predict", str(d / "water.xyz"), "--model", str(d / "model.pt"), "--out", str(d / "F.npy")]) == 0
    F = np.load(d / "F.npy")
    expected = model.predict(([8, 1, 1], [[0, 0, 0.117], [0, 0.757, -0.469], [0, -0.757, -0.469]]))
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
