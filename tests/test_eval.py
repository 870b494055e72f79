"""hamnet eval: prediction files and trained runs scored with QH9's metrics.

References are computed here independently: ``scipy.linalg.eigh(F, S)`` for orbital
energies and coefficients, numpy for matrix errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg

from hamnet.data import record_keys as RK
from hamnet.data import open_dataset
from hamnet.testing import make_store, tiny_config


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return make_store(root / "with_s", n=6), make_store(root / "without_s", n=6, overlap=False)


def _exact(ds, indices):
    return {str(i): ds[i][RK.F] for i in indices}


def test_exact_predictions_score_zero(stores, tmp_path):
    from hamnet.train.evaluate import evaluate_predictions

    ds = open_dataset(stores[0])
    np.savez(tmp_path / "pred.npz", **_exact(ds, range(len(ds))))
    res, n = evaluate_predictions(tmp_path / "pred.npz", ds)
    assert n == 6
    for k, v in res.items():
        assert v == pytest.approx(100.0 if k == "psi_cos" else 0.0, abs=1e-6), k


def test_perturbed_predictions_match_a_hand_computation(stores, tmp_path):
    from hamnet.basis import OrbitalBasis
    from hamnet.train.evaluate import evaluate_predictions

    ds = open_dataset(stores[0])
    rng = np.random.default_rng(3)
    preds, h, hd, eps, cos, homo = {}, [], [], [], [], []
    ao_atom = OrbitalBasis("sto-3g", [1, 8]).layout([8, 1, 1]).ao_atom  # O: 5 AOs, H: 1 each
    for i in (4, 5):
        rec = ds[i]
        d = rng.normal(scale=1e-3, size=rec[RK.F].shape)
        F = rec[RK.F] + (d + d.T) / 2
        preds[str(i)] = F
        err = np.abs(F - rec[RK.F])
        h.append(err.mean())
        same = np.equal.outer(ao_atom, ao_atom)
        hd.append(err[same].mean())
        e_p, c_p = scipy.linalg.eigh(F, rec[RK.S])
        e_r, c_r = scipy.linalg.eigh(rec[RK.F], rec[RK.S])
        eps.append(np.abs(e_p[:5] - e_r[:5]).mean())
        homo.append(abs(e_p[4] - e_r[4]))
        c = [abs(c_p[:, k] @ c_r[:, k]) / np.linalg.norm(c_p[:, k]) / np.linalg.norm(c_r[:, k]) for k in range(5)]
        cos.append(np.mean(c))
    np.savez(tmp_path / "pred.npz", **preds)
    res, n = evaluate_predictions(tmp_path / "pred.npz", ds)
    assert n == 2
    assert res["H_mae"] == pytest.approx(1e6 * np.mean(h), rel=1e-9)
    assert res["H_diag_mae"] == pytest.approx(1e6 * np.mean(hd), rel=1e-9)
    assert res["eps_occ_mae"] == pytest.approx(1e6 * np.mean(eps), rel=1e-6)
    assert res["homo_mae"] == pytest.approx(1e6 * np.mean(homo), rel=1e-6)
    assert res["psi_cos"] == pytest.approx(100 * np.mean(cos), rel=1e-9)
    assert 0 < res["H_mae"] and res["psi_cos"] < 100


def test_missing_overlap_is_computed_with_pyscf(stores, tmp_path):
    from hamnet.train.evaluate import evaluate_predictions

    with_s, without_s = open_dataset(stores[0]), open_dataset(stores[1])
    assert RK.S not in without_s[0]
    preds = {k: v + 1e-3 * np.eye(len(v)) for k, v in _exact(with_s, range(6)).items()}
    np.savez(tmp_path / "pred.npz", **preds)
    a, _ = evaluate_predictions(tmp_path / "pred.npz", with_s)
    b, _ = evaluate_predictions(tmp_path / "pred.npz", without_s)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-8, abs=1e-9), k


def test_bad_prediction_files(stores, tmp_path):
    from hamnet.train.evaluate import EvaluationError, evaluate_predictions

    ds = open_dataset(stores[0])
    np.savez(tmp_path / "p.npz", **_exact(ds, [0, 1]))
    with pytest.raises(EvaluationError, match=r"no prediction for 1 record.*\[2\]"):
        evaluate_predictions(tmp_path / "p.npz", ds, [0, 1, 2])
    np.savez(tmp_path / "k.npz", mol0=ds[0][RK.F])
    with pytest.raises(EvaluationError, match="'mol0' is not a record index"):
        evaluate_predictions(tmp_path / "k.npz", ds)
    np.savez(tmp_path / "s.npz", **{"0": ds[0][RK.F][:5, :5]})
    with pytest.raises(EvaluationError, match=r"shape \(5, 5\)"):
        evaluate_predictions(tmp_path / "s.npz", ds)


def test_cli_eval_predictions_writes_json(stores, tmp_path, capsys):
    from hamnet.cli import main

    ds = open_dataset(stores[0])
    np.savez(tmp_path / "pred.npz", **_exact(ds, [4, 5]))
    assert main(["eval", "--predictions", str(tmp_path / "pred.npz"), "--data", str(stores[0]),
                 "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "psi_cos" in out and "100.000" in out
    doc = json.loads((tmp_path / "pred.eval_test.json").read_text())
    assert doc["n_molecules"] == 2 and doc["metrics"]["H_mae"] == 0.0 and doc["units"]["psi_cos"] == "%"
    # --split test needs records 4, 5 only; a file lacking them is an error, exit status 2
    np.savez(tmp_path / "few.npz", **_exact(ds, [0]))
    assert main(["eval", "--predictions", str(tmp_path / "few.npz"), "--data", str(stores[0]),
                 "--split", "test"]) == 2
    assert "no prediction" in capsys.readouterr().err


def test_cli_eval_of_a_run_and_a_mismatched_store(stores, tmp_path, capsys):
    from hamnet.cli import main
    from hamnet.train.checkpoint import load_checkpoint_model
    from hamnet.train.evaluate import evaluate_model
    from hamnet.train.loop import run

    run(tiny_config(stores[0], limits={"max_steps": 1}, eval={"every_steps": 1}), tmp_path / "run",
        progress=False, evaluate_test=False)
    assert main(["eval", str(tmp_path / "run"), "--split", "val", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "run" / "eval_val.json").read_text())
    model, _ = load_checkpoint_model(tmp_path / "run" / "best.pt")
    ref, n = evaluate_model(model, open_dataset(stores[0]), [2, 3])  # split 'tiny' of 6: val = 2, 3
    assert doc["n_molecules"] == n == 2 and doc["metrics"]["H_mae"] == pytest.approx(ref["H_mae"])
    other = make_store(tmp_path / "svp", n=4, basis="6-31g")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--data", str(other), "--split", "all"]) == 2
    assert "basis" in capsys.readouterr().err


def test_cli_eval_guess_energy(stores, tmp_path):
    """--guess-energy: E[P_pred] - E[P_ref] with the store's HF/STO-3G settings; zero for the
    exact F, positive (variational) for a perturbed one, in mHa."""
    from hamnet.cli import main
    from hamnet.metrics import guess_energy
    from hamnet.scf import guess_dm
    from hamnet.train.evaluate import store_scf

    ds = open_dataset(stores[0])
    noise = np.random.default_rng(0).normal(scale=1e-2, size=(7, 7))
    pred = {"4": ds[4][RK.F], "5": ds[5][RK.F] + noise + noise.T}
    np.savez(tmp_path / "pred.npz", **pred)
    assert main(["eval", "--predictions", str(tmp_path / "pred.npz"), "--data", str(stores[0]),
                 "--split", "test", "--guess-energy"]) == 0
    doc = json.loads((tmp_path / "pred.eval_test.json").read_text())
    assert doc["units"]["guess_energy"] == "mHa" and doc["units"]["density_mae"] == "ue"
    e5 = guess_energy(store_scf(ds, ds[5]), pred["5"], ds[5][RK.F])
    assert abs(guess_energy(store_scf(ds, ds[4]), pred["4"], ds[4][RK.F])) < 1e-9 and e5 > 1e-6
    assert doc["metrics"]["guess_energy"] == pytest.approx(e5 / 2 * 1e3, rel=1e-6, abs=1e-9)
    mf = store_scf(ds, ds[5])  # the store's SCF settings: the reference density has the stored energy
    assert abs(mf.energy_tot(dm=guess_dm(mf, ds[5][RK.F])) - ds[5][RK.ENERGY]) < 1e-8
