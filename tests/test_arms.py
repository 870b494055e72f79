"""benchmarks/arms.py: two arms trained side by side end to end (3 steps each), the
summary's statistics on hand-made run directories, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from hamnet.testing import tiny_config


@pytest.fixture(scope="module")
def arms(load_benchmark):
    return load_benchmark("arms")


@pytest.fixture
def config_file(store, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(store)))
    return path


def test_two_arms_side_by_side_then_resume(arms, config_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = [str(config_file), "--out", str(out), "--steps", "3", "--seeds", "0",
            "--arm", "off", "model.tracegrad=false", "--arm", "on", "model.tracegrad=true optim.lr=0.002",
            "--scf", "--scf-molecules", "1"]
    assert arms.main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert list(s["arms"]) == ["off", "on"] and s["missing"] == []
    assert s["arms"]["on"]["overrides"] == ["model.tracegrad=true", "optim.lr=0.002"]
    for name in ("off", "on"):
        rd = out / name / "seed0"
        test = json.loads((rd / "eval_test.json").read_text())["metrics"]
        stats = s["arms"][name]["stats"]
        assert stats["test_H_mae_uHa"] == {"mean": test["H_mae"], "sd": None, "n": 1}
        assert stats["test_psi_cos_%"]["mean"] == test["psi_cos"]
        assert stats["steps"]["mean"] == 3
        assert stats["params"]["mean"] > 0
        assert stats["scf_cycles_minao"]["mean"] > 0 and stats["scf_ratio"]["n"] == 1
        assert "seed=0" in (rd / "stdout.log").read_text().splitlines()[0]  # the command heads the log
        cfg = yaml.safe_load((rd / "config.yaml").read_text())
        assert cfg["limits"] == {**cfg["limits"], "max_steps": 3, "max_minutes": None}
    assert s["arms"]["on"]["stats"]["params"]["mean"] > s["arms"]["off"]["stats"]["params"]["mean"]
    plan = json.loads((out / "arms.json").read_text())
    assert plan["arms"]["off"] == ["model.tracegrad=false"] and plan["seeds"] == [0] and plan["steps"] == 3
    assert plan["machine"]["cpu_count"] >= 1 and plan["machine"]["torch"]
    assert "--arm off model.tracegrad=false" in plan["command"]
    md = (out / "summary.md").read_text()
    assert md.startswith("| arm | seeds | params |") and "| off | 0 |" in md and "cycles model/minao" in md
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    # rerun: nothing left to train; other overrides under a known name are refused
    assert arms.main(argv) == 0
    assert "2 run(s) already done: off/seed0, on/seed0" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        arms.main([str(config_file), "--out", str(out), "--steps", "3", "--arm", "on", "optim.lr=0.001"])
    assert exc.value.code == 2
    assert "holds runs of other arms on" in capsys.readouterr().err


def _fake_run(rd: Path, h_mae: float, diag: list, scf_cycles: float, steps: int = 10):
    rd.mkdir(parents=True)
    doc = {"metrics": {"H_mae": h_mae, "eps_occ_mae": 2 * h_mae, "psi_cos": 99.0},
           "units": {"H_mae": "uHa", "eps_occ_mae": "uHa", "psi_cos": "%"}, "n_molecules": 2, "step": steps,
           "baseline": {"metrics": {"H_mae": 1000.0}}}
    (rd / "eval_test.json").write_text(json.dumps(doc))
    with open(rd / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["step", "elapsed_s", "structures_per_s", "val_H_mae_uHa", "diag_trace_share"])
        w.writeheader()
        for k, d in enumerate(diag):
            w.writerow({"step": 5 * (k + 1), "elapsed_s": 30.0 * (k + 1), "structures_per_s": 4.0 + k,
                        "val_H_mae_uHa": h_mae * (2 - k), "diag_trace_share": "" if d is None else d})
    scf = {"summary": {"n_molecules": 4, "cycles": {"minao": 10.0, "hamnet": scf_cycles},
                       "achieved": {"minao": scf_cycles / 10.0}, "guard_fallbacks": 1}}
    (rd / "scf_test.json").write_text(json.dumps(scf))


def test_summary_mean_and_sample_sd_over_seeds(arms, tmp_path):
    out = tmp_path / "fake"
    _fake_run(out / "a" / "seed0", 10.0, [0.5, 0.25], 6.0)
    _fake_run(out / "a" / "seed1", 14.0, [0.5, 0.75, None], 8.0)  # diag: the last value written
    _fake_run(out / "b" / "seed0", 20.0, [0.1], 9.0)
    s = arms.write_summary(out, {"a": ["model.x=1"], "b": ["model.x=2"]}, [0, 1])
    a = s["arms"]["a"]
    h = a["stats"]["test_H_mae_uHa"]
    assert h["n"] == 2 and h["mean"] == pytest.approx(12.0) and h["sd"] == pytest.approx(math.sqrt(8.0))
    assert a["stats"]["test_eps_occ_mae_uHa"]["mean"] == pytest.approx(24.0)
    assert a["stats"]["test_eps_occ_mae_uHa"]["sd"] == pytest.approx(2 * math.sqrt(8.0))
    assert a["diag"]["diag_trace_share"]["mean"] == pytest.approx(0.5)  # (0.25 + 0.75) / 2
    assert a["diag"]["diag_trace_share"]["sd"] == pytest.approx(math.sqrt(0.125))
    assert a["stats"]["scf_ratio"]["mean"] == pytest.approx(0.7)  # (0.6 + 0.8) / 2
    assert a["stats"]["scf_cycles_model"]["sd"] == pytest.approx(math.sqrt(2.0))
    assert a["stats"]["scf_fallback_share"]["mean"] == pytest.approx(0.25)
    assert a["stats"]["steps"]["mean"] == pytest.approx(12.5)  # 10 and 15: the last metrics.csv rows
    assert a["stats"]["structures_per_s"]["mean"] == pytest.approx((4.5 + 5.0) / 2)
    assert a["stats"]["params"]["n"] == 0  # no best.pt
    runs = {(r["arm"], r["seed"]): r for r in s["runs"]}
    assert runs[("a", 1)]["diag"]["diag_trace_share"] == 0.75 and runs[("a", 1)]["values"]["test_H_mae_uHa"] == 14.0
    assert s["arms"]["b"]["seeds"] == [0] and s["arms"]["b"]["missing_seeds"] == [1]
    assert s["missing"] == ["b/seed1 (missing)"]
    md = (out / "summary.md").read_text()
    assert "| a | 0,1 | - |" in md and "12.0 ± 2.8" in md and "0.700 ± 0.141" in md
    assert "diag_trace_share" in md and "missing: b/seed1 (missing)" in md
    assert (out / "learning_curves.png").is_file()
    fig, data = arms.curves_figure(s)
    assert sorted(data) == ["a/seed0", "a/seed1", "b/seed0"]
    assert list(data["a/seed0"][0]) == [0.5, 1.0] and list(data["a/seed0"][1]) == [20.0, 10.0]


@pytest.mark.parametrize("extra, message", [
    (["--arm", "off"], "give a NAME and its overrides"),
    (["--arm", "x", "model.tracegrad=false", "--arm", "x", "model.tracegrad=true"], "given twice"),
    (["--arm", "x", "model.tracegrd=false"], "arm x: unknown key 'model.tracegrd'"),
    (["--arm", "x", "notakeyvalue"], "is not KEY=VALUE"),
    (["--arm", "x", "seed=3"], "comes from --seeds"),
])
def test_bad_input_is_one_line_and_status_2(arms, config_file, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        arms.main([str(config_file), "--out", str(tmp_path / "o"), "--steps", "3", *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unknown_config_file_and_missing_budget(arms, config_file, tmp_path, capsys):
    for argv, message in (([str(tmp_path / "nope.yaml"), "--steps", "3"], "no config file at"),
                          ([str(config_file)], "give the budget of every run")):
        with pytest.raises(SystemExit) as exc:
            arms.main([*argv, "--out", str(tmp_path / "o"), "--arm", "x", "model.tracegrad=false"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err


def test_dry_run_prints_the_commands_and_writes_nothing(arms, config_file, tmp_path, capsys):
    out = tmp_path / "dry"
    assert arms.main([str(config_file), "--out", str(out), "--minutes", "2", "--seeds", "0", "1",
                      "--set", "optim.lr=0.001", "--arm", "on", "model.tracegrad=true", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("on/seed1: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1")
    assert ("--set seed=1 --set limits.max_minutes=2.0 --set limits.max_steps=null --set limits.clock=wall "
            "--set optim.lr=0.001 "
            "--set model.tracegrad=true --quiet") in lines[1]
    assert not out.exists()


def test_seed_field_gives_each_seed_its_own_init_model(arms, config_file, tmp_path, capsys):
    """``{seed}`` in an override is the run's seed (one fine-tune per seed's base model), and a
    base file that does not exist for one seed is a one-line error before anything runs."""
    base = tmp_path / "base"
    for seed in (0, 1):
        (base / f"seed{seed}").mkdir(parents=True)
        (base / f"seed{seed}" / "best.pt").write_bytes(b"x")
    argv = [str(config_file), "--out", str(tmp_path / "o"), "--steps", "3", "--seeds", "0", "1",
            "--arm", "ft", f"model.init_from={base}/seed{{seed}}/best.pt", "--dry-run"]
    assert arms.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"--set model.init_from={base}/seed0/best.pt" in lines[0]
    assert f"--set model.init_from={base}/seed1/best.pt" in lines[1] and "{seed}" not in lines[1]
    with pytest.raises(SystemExit) as exc:
        arms.main([*argv[:6], "0", "1", "2", *argv[8:]])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"model.init_from: no file at {base}/seed2/best.pt (seed 2)" in err
