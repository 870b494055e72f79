"""hamnet train: a tiny run, its files and checkpoints, resume, Ctrl-C, corrupt checkpoints.

Data: a few water geometries labeled here with PySCF RHF/STO-3G (7 AOs), written with
``hamnet.data.write_dataset``; the models are tiny so every run takes seconds.
The data and config helpers live in :mod:`hamnet.testing`; fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hamnet.data import open_dataset
from hamnet.testing import WATER_POS, WATER_Z, make_store, tiny_config


def metrics_rows(run_dir) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))




# ---- tests --------------------------------------------------------------------------------------


def test_run_writes_run_directory_and_loadable_checkpoints(store, tmp_path):
    from hamnet.model import load_model
    from hamnet.train.checkpoint import CHECKPOINT_VERSION, read_checkpoint
    from hamnet.train.loop import run

    res = run(tiny_config(store), tmp_path / "run", progress=False)
    run_dir = tmp_path / "run"
    assert res.status == "finished" and res.step == 4
    for name in ("config.yaml", "train.log", "metrics.csv", "last.pt", "best.pt", "eval_test.json"):
        assert (run_dir / name).is_file(), name
    # the resolved config has every default filled in and reloads to the same config
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["optim"]["clip_grad_norm"] == 10.0 and resolved["model"]["tracegrad"] is True
    rows = metrics_rows(run_dir)
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r["val_H_mae_uHa"])) for r in rows)
    payload = read_checkpoint(run_dir / "last.pt", need_train_state=True)
    ck = payload["checkpoint"]
    assert ck["version"] == CHECKPOINT_VERSION and ck["step"] == 4
    assert payload["basis"] == "sto-3g" and payload["xc"] == "hf" and payload["elements"] == [1, 8]
    assert payload["hamnet_version"] and ck["dataset"]["count"] == 10
    # best.pt is a hamnet model file: load_model works and predicts a symmetric 7x7 matrix
    model = load_model(run_dir / "best.pt")
    F = model.predict((WATER_Z, WATER_POS))
    assert F.shape == (7, 7) and np.allclose(F, F.T)
    # the test metrics printed by the run are those of best.pt, recomputed here
    from hamnet.train.evaluate import evaluate_model

    again, n = evaluate_model(model, open_dataset(store), [8, 9])
    assert n == 2 and again["H_mae"] == pytest.approx(res.test["H_mae"], rel=1e-6)
    assert res.model is not None


def test_training_reduces_the_loss(store, tmp_path):
    """A few dozen steps on 6 molecules must lower the block error (the loop really learns)."""
    from hamnet.train.loop import run

    cfg = tiny_config(store, limits={"max_steps": 40}, eval={"every_steps": 40},
                      optim={"lr": 0.01, "ema_decay": None}, schedule={"warmup_steps": 0, "kind": "constant"})
    cfg["split"] = {"val": "train"}  # validate on the training molecules
    first = run({**cfg, "limits": {"max_steps": 1, "max_minutes": None}, "eval": {"every_steps": 1}},
                tmp_path / "one", progress=False, evaluate_test=False)
    res = run(cfg, tmp_path / "many", progress=False, evaluate_test=False)
    assert res.best["value"] < 0.7 * first.best["value"]


def test_resume_continues_without_duplicate_rows(store, tmp_path):
    from hamnet.train.checkpoint import read_checkpoint
    from hamnet.train.loop import run

    run_dir = tmp_path / "run"
    run(tiny_config(store), run_dir, progress=False, evaluate_test=False)
    # a row written after the last checkpoint (a crash between the two) must not survive
    with open(run_dir / "metrics.csv", "a") as fh:
        fh.write("5" + ",0" * 15 + "\n")
    res = run(tiny_config(store, limits={"max_steps": 8}), run_dir, progress=False, evaluate_test=False)
    assert res.step == 8
    steps = [int(r["step"]) for r in metrics_rows(run_dir)]
    assert steps == [2, 4, 6, 8]
    ck = read_checkpoint(run_dir / "last.pt")["checkpoint"]
    assert ck["step"] == 8 and ck["samples"] == 16  # 8 steps x 2 molecules, none twice
    assert "resuming" in (run_dir / "train.log").read_text()
    # same limit again: nothing to train, no new rows
    assert run(tiny_config(store, limits={"max_steps": 8}), run_dir, progress=False).step == 8
    assert [int(r["step"]) for r in metrics_rows(run_dir)] == steps


def test_resume_equals_uninterrupted_run(store, tmp_path):
    """4 + 4 steps with a restart give the same weights as 8 steps in one go.

    (A constant schedule after warmup: a decaying one follows max_steps, which differs.)
    """
    from hamnet.train.loop import run

    sched = {"kind": "constant"}
    cfg = tiny_config(store, limits={"max_steps": 8}, eval={"every_steps": 4}, schedule=sched)
    whole = run(cfg, tmp_path / "whole", progress=False, evaluate_test=False)
    run(tiny_config(store, limits={"max_steps": 4}, eval={"every_steps": 4}, schedule=sched), tmp_path / "split",
        progress=False, evaluate_test=False)
    resumed = run(cfg, tmp_path / "split", progress=False, evaluate_test=False)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def test_resume_with_a_different_config_is_refused(store, tmp_path):
    from hamnet.train.config import ConfigError
    from hamnet.train.loop import run

    run(tiny_config(store, limits={"max_steps": 2}), tmp_path / "run", progress=False, evaluate_test=False)
    with pytest.raises(ConfigError, match="optim.lr"):
        run(tiny_config(store, optim={"lr": 0.1}), tmp_path / "run", progress=False)


def test_truncated_and_foreign_checkpoints_give_clear_errors(store, tmp_path):
    from hamnet.train.checkpoint import CheckpointError
    from hamnet.train.loop import run

    run_dir = tmp_path / "run"
    run(tiny_config(store, limits={"max_steps": 2}), run_dir, progress=False, evaluate_test=False)
    raw = (run_dir / "last.pt").read_bytes()
    (run_dir / "last.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        run(tiny_config(store), run_dir, progress=False)
    torch.save({"weights": torch.zeros(3)}, run_dir / "last.pt")
    with pytest.raises(CheckpointError, match="not a hamnet"):
        run(tiny_config(store), run_dir, progress=False)
    # a newer checkpoint version is refused with the versions named
    (run_dir / "last.pt").write_bytes(raw)
    payload = torch.load(run_dir / "last.pt", weights_only=True)
    payload["checkpoint"]["version"] = 99
    torch.save(payload, run_dir / "last.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        run(tiny_config(store), run_dir, progress=False)


def test_model_and_store_basis_mismatch_is_an_error(store, tmp_path):
    from hamnet.model import build_model
    from hamnet.train.data import DataError, check_compatible

    ds = open_dataset(store)
    with pytest.raises(DataError, match="basis"):
        check_compatible(build_model("def2-svp", ["H", "O"]).basis.basis, "hf", ds)
    with pytest.raises(DataError, match="b3lyp"):
        check_compatible("sto-3g", "b3lyp", ds)
    check_compatible("STO-3G", "HF", ds)  # names compare as PySCF normalizes them


def test_float64_option(store, tmp_path):
    from hamnet.train.loop import run

    res = run(tiny_config(store, precision="float64", limits={"max_steps": 2}), tmp_path / "run",
              progress=False, evaluate_test=False)
    assert res.model.dtype == torch.float64


def test_cli_default_job_with_overrides(store, tmp_path, capsys, monkeypatch):
    """``hamnet train`` without a config runs the default job (here on a given store, briefly)."""
    from hamnet.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--data", str(store), "--max-steps", "2", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr()
    assert "psi_cos" in out.out + out.err  # the metrics table
    cfg = yaml.safe_load((tmp_path / "runs/md17-water-default/config.yaml").read_text())
    assert cfg["data"]["path"] == str(store) and cfg["split"]["fractions"] == [0.7, 0.1]
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(store, tmp_path):
    cfg = tiny_config(store, limits={"max_steps": None, "max_minutes": 10.0}, eval={"every_steps": 2})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hamnet", "train", str(tmp_path / "cfg.yaml"), "--run-dir",
                             str(run_dir), "--no-progress"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and not (run_dir / "last.pt").exists():
        time.sleep(0.2)
    assert (run_dir / "last.pt").exists(), "training did not start"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted at step" in out
    from hamnet.train.checkpoint import read_checkpoint

    ck = read_checkpoint(run_dir / "last.pt", need_train_state=True)["checkpoint"]
    assert ck["step"] >= 2
    assert max(int(r["step"]) for r in metrics_rows(run_dir)) <= ck["step"]


def test_spectral_losses_train_without_nan(tmp_path):
    """eig_weight and density_weight > 0 on a store without S (S^-1/2 from PySCF's int1e_ovlp),
    with rotation augmentation (the Löwdin blocks rotate with the targets): finite losses,
    logged in metrics.csv, best.pt chosen by density_mae, and the spectral losses go down."""
    from hamnet.train.loop import run

    store = make_store(tmp_path / "no-s", n=8, overlap=False)
    cfg = tiny_config(store, loss={"eig_weight": 1.0, "eig_virtual": 1, "density_weight": 1.0},
                      limits={"max_steps": 30}, eval={"every_steps": 10, "metric": "density_mae"},
                      optim={"lr": 0.01, "ema_decay": None}, schedule={"warmup_steps": 0, "kind": "constant"},
                      augment={"rotations": True})
    cfg["split"] = {"val": "train"}
    res = run(cfg, tmp_path / "run", progress=False, evaluate_test=False)
    assert res.status == "finished" and res.best["metric"] == "density_mae"
    rows = metrics_rows(tmp_path / "run")
    assert len(rows) == 3
    for r in rows:
        for k in ("train_loss", "train_loss_eig", "train_loss_density", "val_density_mae_ue", "val_H_mae_uHa"):
            assert math.isfinite(float(r[k])), k
    assert float(rows[-1]["train_loss_density"]) < float(rows[0]["train_loss_density"])
    assert float(rows[-1]["train_loss_eig"]) < float(rows[0]["train_loss_eig"])


def test_init_from_fine_tunes_from_a_trained_model(store, tmp_path):
    """model.init_from: a fresh run starts from another run's weights (WA-style fine-tuning)."""
    from hamnet.errors import ConfigError
    from hamnet.model import load_model
    from hamnet.train.loop import run

    run(tiny_config(store, limits={"max_steps": 6}), tmp_path / "a", progress=False, evaluate_test=False)
    src = tmp_path / "a" / "last.pt"
    start = {k: v.clone() for k, v in load_model(src).state_dict().items()}
    # zero steps: the fine-tuning run's model is exactly the source model
    res = run(tiny_config(store, model={"init_from": str(src)}, limits={"max_steps": 0}),
              tmp_path / "b", progress=False, evaluate_test=False)
    got = res.model.state_dict()
    assert all(torch.equal(got[k].cpu(), v) for k, v in start.items())
    # training moves away from it, with the spectral terms switched on
    res = run(tiny_config(store, model={"init_from": str(src)}, limits={"max_steps": 2},
                          loss={"density_weight": 1.0}), tmp_path / "c", progress=False,
              evaluate_test=False)
    assert any(not torch.equal(res.model.state_dict()[k].cpu(), v) for k, v in start.items())
    with pytest.raises(ConfigError, match="model.init_from"):
        run(tiny_config(store, model={"init_from": str(tmp_path / "missing.pt")}), tmp_path / "d",
            progress=False)
    with pytest.raises(ConfigError, match="model.init_from: .* does not fit"):
        run(tiny_config(store, model={"init_from": str(src), "num_channels": 3}), tmp_path / "e",
            progress=False)


def test_cpu_clock_counts_the_process_cpu_time(store, tmp_path, monkeypatch):
    """``limits.clock: cpu`` stops on the process's CPU time, not on the wall clock: a fake
    CPU clock that advances 6 s per reading ends a 0.5-minute run after a few steps, and
    ``elapsed_s`` is that clock's time; with ``clock: wall`` the same fake changes nothing."""
    import hamnet.train.loop as loop

    ticks = iter(range(0, 10_000, 6))
    monkeypatch.setattr(loop.time, "process_time", lambda: float(next(ticks)))
    cfg = tiny_config(store, limits={"max_steps": 6, "max_minutes": 0.5, "clock": "cpu"}, eval={"every_steps": 1})
    res = loop.run(cfg, tmp_path / "cpu", progress=False, evaluate_test=False)
    # readings: the mark before the loop (0), then each step's start and end (6, 12); a
    # validation after every step resets the mark (18), so every step counts 12 s, and the
    # budget of 30 s is used up at step 3
    assert res.status == "finished" and res.step == 3
    assert [float(r["elapsed_s"]) for r in metrics_rows(tmp_path / "cpu")] == [12.0, 24.0, 36.0]
    cfg["limits"]["clock"] = "wall"
    res = loop.run(cfg, tmp_path / "wall", progress=False, evaluate_test=False)
    assert res.status == "finished" and res.step == 6
    # the budget of a run is counted on one clock: resuming on the other is refused
    from hamnet.train.config import ConfigError

    with pytest.raises(ConfigError, match="trained with limits.clock=cpu"):
        loop.run(cfg, tmp_path / "cpu", progress=False, evaluate_test=False)
