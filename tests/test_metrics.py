"""QH9 metrics against hand computations and PySCF's own orbital energies."""

import numpy as np
import pytest
from pyscf import gto, scf

from hamnet.metrics import MetricAccumulator, molecule_metrics, orbitals


def test_two_orbital_case_by_hand():
    H_ref = np.array([[-1.0, 0.0], [0.0, 1.0]])
    H_pred = np.array([[-1.0, 0.1], [0.1, 1.0]])
    m = molecule_metrics(H_pred, H_ref, np.eye(2), np.array([0, 1]), nocc=1)
    root = np.sqrt(1.0 + 0.01)  # eigenvalues of H_pred are -root, +root
    theta = 0.5 * np.arctan(0.1)  # rotation angle of its eigenvectors
    assert m["H_mae"] == pytest.approx(0.05, abs=1e-15)
    assert m["H_diag_mae"] == pytest.approx(0.0, abs=1e-15)
    assert m["H_offdiag_mae"] == pytest.approx(0.1, abs=1e-15)
    assert m["eps_occ_mae"] == pytest.approx(root - 1.0, abs=1e-14)
    assert m["homo_mae"] == pytest.approx(root - 1.0, abs=1e-14)
    assert m["lumo_mae"] == pytest.approx(root - 1.0, abs=1e-14)
    assert m["gap_mae"] == pytest.approx(2 * root - 2.0, abs=1e-14)
    assert m["psi_cos"] == pytest.approx(np.cos(theta), abs=1e-14)


def test_accumulator_units_and_equal_weights():
    acc = MetricAccumulator()
    acc.add({"H_mae": 1e-6, "psi_cos": 1.0})
    acc.add({"H_mae": 3e-6, "psi_cos": 0.5})
    res = acc.result()
    assert res["H_mae"] == pytest.approx(2.0)  # micro-Hartree
    assert res["psi_cos"] == pytest.approx(75.0)  # percent
    with pytest.raises(ValueError, match="no molecules"):
        MetricAccumulator().result()


def test_orbitals_match_pyscf_and_exact_prediction_scores_perfectly():
    mol = gto.M(atom="O 0 0 0; H 0.76 0.59 0; H -0.76 0.59 0", basis="def2-svp", verbose=0)
    mf = scf.RHF(mol).run(conv_tol=1e-11)
    F, S = mf.get_fock(), mf.get_ovlp()
    eps, C = orbitals(F, S)
    assert np.abs(eps - mf.mo_energy).max() < 1e-8
    assert np.abs(C.T @ S @ C - np.eye(mol.nao)).max() < 1e-10
    ao_atom = np.repeat(np.arange(mol.natm), np.diff(mol.aoslice_by_atom()[:, 2:], axis=1)[:, 0])
    m = molecule_metrics(F, F, S, ao_atom, nocc=mol.nelectron // 2)
    assert m["H_mae"] == 0 and m["eps_occ_mae"] < 1e-12 and m["psi_cos"] == pytest.approx(1.0)
    noisy = F + 1e-3 * np.eye(mol.nao)  # shifts every orbital energy by ~1e-3 (S ~ I)
    m = molecule_metrics(noisy, F, S, ao_atom, nocc=5)
    assert m["H_diag_mae"] > 0 and m["H_offdiag_mae"] == 0
    with pytest.raises(ValueError, match="shape mismatch"):
        molecule_metrics(F[:3, :3], F, S, ao_atom, nocc=5)
    with pytest.raises(ValueError, match="nocc"):
        molecule_metrics(F, F, S, ao_atom, nocc=0)
