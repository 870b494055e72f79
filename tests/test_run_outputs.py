"""A run's outputs chain: its exact split (split.json, ``data info --runs``), eval's refusal
to score training records, ``predict --data`` -> ``eval --predictions``, the end-of-training
summary with its baseline, and the training bar's budget."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from hamnet.cli import main
from hamnet.data import open_dataset
from hamnet.data import record_keys as RK
from hamnet.data.splits import random_split
from hamnet.testing import tiny_config


@pytest.fixture(scope="module")
def run_dir(store, tmp_path_factory):
    """A 4-step run on a random 60/20/20 split of the 10-water store (not its 'tiny' split)."""
    from hamnet.train.loop import run

    out = tmp_path_factory.mktemp("runs") / "r"
    run(tiny_config(store, split={"fractions": [0.6, 0.2]}), out, progress=False)
    return out


def test_run_records_its_exact_split(run_dir, store):
    from hamnet.train.checkpoint import load_checkpoint_model

    doc = json.loads((run_dir / "split.json").read_text())
    assert doc["split"] == "random-0.6-0.2-seed0"
    assert doc["parts"] == random_split(10, (0.6, 0.2), 0)
    assert doc["store"] == str(store.resolve())
    _, info = load_checkpoint_model(run_dir / "best.pt")
    assert info["dataset"]["parts"]["train"] == doc["parts"]["train"]


def test_end_of_training_says_where_things_are_and_what_to_do_next(run_dir, store):
    # before the eval tests below, which rewrite eval_test.json
    from hamnet.train.evaluate import mean_block_baseline

    log = (run_dir / "train.log").read_text()
    assert f"best model: {run_dir / 'best.pt'}; test metrics: {run_dir / 'eval_test.json'}" in log
    assert f"next: hamnet guess MOL.xyz --model {run_dir / 'best.pt'}" in log
    assert f"hamnet eval {run_dir} --split test" in log and f"hamnet report {run_dir}" in log
    doc = json.loads((run_dir / "eval_test.json").read_text())
    parts = random_split(10, (0.6, 0.2), 0)
    base, _ = mean_block_baseline(open_dataset(store), parts["train"], parts["test"])
    assert doc["baseline"]["metrics"]["H_mae"] == pytest.approx(base["H_mae"], rel=1e-12)
    assert f"no network): H MAE {base['H_mae']:.1f} uHa" in log


def test_data_info_lists_the_splits_runs_used(run_dir, store, capsys):
    assert main(["data", "info", str(store), "--runs", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "split tiny: train 6, val 2, test 2" in out
    assert f"split random-0.6-0.2-seed0 of run {run_dir}: train 6, val 2, test 2" in out
    # another store is not listed
    assert main(["data", "info", str(store), "--runs", str(store)]) == 0
    assert "of run" not in capsys.readouterr().out


def test_eval_refuses_a_part_that_overlaps_the_training_records(run_dir, store, capsys):
    train = set(random_split(10, (0.6, 0.2), 0)["train"])
    n_over = len(train & {8, 9})  # the store's tiny/test part
    assert n_over > 0  # the fixture's split overlaps it (seed 0)
    assert main(["eval", str(run_dir), "--split", "tiny/test", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"{n_over} of its 2 records are training records" in err and "--allow-train-overlap" in err
    assert main(["eval", str(run_dir), "--split", "tiny/test", "--allow-train-overlap", "--quiet"]) == 0
    doc = json.loads((run_dir / "eval_tiny-test.json").read_text())
    assert doc["train_overlap"] == n_over
    capsys.readouterr()
    # the run's own test part and its own train part are allowed
    assert main(["eval", str(run_dir), "--split", "test", "--quiet"]) == 0
    assert main(["eval", str(run_dir), "--split", "train", "--quiet"]) == 0


def test_eval_says_when_it_overwrites(run_dir, capsys):
    out = run_dir / "eval_val.json"
    out.unlink(missing_ok=True)
    assert main(["eval", str(run_dir), "--split", "val", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {out}"
    assert main(["eval", str(run_dir), "--split", "val", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote {out} (overwrote the previous one)"


def test_predict_data_round_trips_through_eval_predictions(run_dir, store, tmp_path, capsys):
    from hamnet.model import load_model
    from hamnet.train.evaluate import evaluate_model

    pred = tmp_path / "pred.npz"
    assert main(["predict", "--data", str(store), "--split", "tiny/test", "--model", str(run_dir / "best.pt"),
                 "--out", str(pred), "--quiet"]) == 0
    with np.load(pred) as npz:
        assert sorted(npz.files) == ["8", "9"]
        assert npz["8"].shape == (7, 7)
    assert main(["eval", "--predictions", str(pred), "--data", str(store), "--quiet"]) == 0
    scored = json.loads((tmp_path / "pred.eval_all.json").read_text())
    ds = open_dataset(store)
    direct, n = evaluate_model(load_model(run_dir / "best.pt"), ds, [8, 9])
    assert scored["n_molecules"] == n == 2
    for k, v in direct.items():
        assert scored["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    # every record by default; bad combinations are one-line errors
    assert main(["predict", "--data", str(store), "--model", str(run_dir / "best.pt"), "--out", str(pred),
                 "--quiet"]) == 0
    with np.load(pred) as npz:
        assert sorted(npz.files, key=int) == [str(i) for i in range(10)]
    capsys.readouterr()
    assert main(["predict", "--data", str(store), "--out", str(tmp_path / "x.npy"), "--quiet"]) == 2
    assert main(["predict", "--split", "test", "--out", str(pred)]) == 2
    assert main(["predict", "--out", str(pred)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("hamnet predict: error: ") for line in err)


def test_mean_block_baseline_matches_a_hand_computation(store):
    from hamnet.train.evaluate import mean_block_baseline

    ds = open_dataset(store)
    train, test = [0, 1, 2], [8, 9]
    F = [np.asarray(ds[i][RK.F]) for i in train]
    # water in STO-3G: O is AOs 0-4, the hydrogens AOs 5 and 6
    o, h1, h2 = slice(0, 5), slice(5, 6), slice(6, 7)
    m_o = np.mean([f[o, o] for f in F], axis=0)
    m_h = np.mean([f[a, a] for f in F for a in (h1, h2)], axis=0)
    m_oh = np.mean([f[o, a] for f in F for a in (h1, h2)], axis=0)
    m_hh = np.mean([f[a, b] for f in F for a, b in ((h1, h2), (h2, h1))], axis=0)
    P = np.zeros((7, 7))
    P[o, o] = m_o
    P[h1, h1] = P[h2, h2] = m_h
    P[o, h1] = P[o, h2] = m_oh
    P[h1, o] = P[h2, o] = m_oh.T
    P[h1, h2] = P[h2, h1] = m_hh
    expected = 1e6 * np.mean([np.abs(P - ds[i][RK.F]).mean() for i in test])
    res, n = mean_block_baseline(ds, train, test)
    assert n == 2
    assert res["H_mae"] == pytest.approx(expected, rel=1e-10)


def test_budget_status_counts_against_whichever_limit_comes_first():
    from hamnet.progress import budget_status

    assert budget_status(100, 30.0, 400, None) == (0.25, "step 100/400, 0.5 min trained")
    assert budget_status(100, 75.0, None, 2.5) == (0.5, "step 100, 1.2/2.5 min trained")
    f, text = budget_status(300, 30.0, 400, 2.5)
    assert f == 0.75 and text == "step 300/400, 0.5/2.5 min trained"
    assert budget_status(500, 300.0, 400, 2.5)[0] == 1.0


def test_training_bar_shows_the_budget_with_labels_and_eta(store, tmp_path, monkeypatch):
    import hamnet.train.loop as loop
    from tqdm import tqdm

    sink = io.StringIO()
    bars = []

    def bar(progress=True, **kw):  # a bar that draws into ``sink`` although stderr is no terminal
        b = tqdm(file=sink, disable=False, mininterval=0, **kw)
        bars.append(b)
        return b

    monkeypatch.setattr(loop, "progress_bar", bar)
    loop.run(tiny_config(store, limits={"max_steps": 4, "max_minutes": 5}), tmp_path / "r", evaluate_test=False)
    text = sink.getvalue()
    assert bars[0].total == 100 and bars[0].n == pytest.approx(100.0)
    assert "train (budget 4 steps or 5 min, whichever first): 100%" in text
    assert "elapsed, ETA " in text and ", step 4/4, 0.0/5 min trained, loss " in text and ", lr " in text
