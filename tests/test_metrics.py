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


def test_density_mae_by_hand_with_a_nonorthogonal_overlap():
    """Two AOs with overlap s: bonding (1, 1)/sqrt(2(1+s)) and antibonding (1, -1)/sqrt(2(1-s))
    orbitals. The reference occupies the bonding one, P_ref = [[1, 1], [1, 1]] / (1+s); the
    prediction (sign of the coupling flipped) the antibonding one, P_pred = [[1, -1], [-1, 1]] / (1-s).
    Mean |dP| = (2 * 2s + 2 * 2) / (4 (1 - s^2)) = 1 / (1 - s)."""
    s = 0.5
    S = np.array([[1.0, s], [s, 1.0]])
    H_ref = np.array([[0.0, -1.0], [-1.0, 0.0]])
    m = molecule_metrics(-H_ref, H_ref, S, np.array([0, 1]), nocc=1)
    assert m["density_mae"] == pytest.approx(1.0 / (1.0 - s), abs=1e-13)
    assert molecule_metrics(H_ref, H_ref, S, np.array([0, 1]), nocc=1)["density_mae"] < 1e-15
    # 3x3, diagonal S = diag(4, 1, 1): orbital k is e_k / sqrt(S_kk) with energy H_kk / S_kk.
    S3 = np.diag([4.0, 1.0, 1.0])
    ref, pred = np.diag([-4.0, 2.0, 3.0]), np.diag([8.0, -1.0, 3.0])  # energies (-1, 2, 3) / (2, -1, 3)
    m = molecule_metrics(pred, ref, S3, np.array([0, 1, 2]), nocc=1)
    # P_ref = 2 * diag(1/4, 0, 0), P_pred = 2 * diag(0, 1, 0)
    assert m["density_mae"] == pytest.approx((0.5 + 2.0) / 9.0, abs=1e-14)
    assert m["eps_occ_mae"] == pytest.approx(0.0, abs=1e-14)  # both occupied energies are -1
    acc = MetricAccumulator()
    acc.add({"density_mae": 2e-6, "guess_energy": 3e-3})
    assert acc.result() == pytest.approx({"density_mae": 2.0, "guess_energy": 3.0})  # ue, mHa


def test_guess_energy_is_zero_for_the_converged_fock_and_positive_for_a_perturbed_one():
    from hamnet.metrics import guess_energy

    mol = gto.M(atom="O 0 0 0; H 0.76 0.59 0; H -0.76 0.59 0", basis="sto-3g", verbose=0)
    mf = scf.RHF(mol).run(conv_tol=1e-11)
    F = mf.get_fock()
    assert abs(guess_energy(mf, F, F)) < 1e-10
    assert abs(guess_energy(mf, F, e_ref=mf.e_tot)) < 1e-8
    noise = np.random.default_rng(0).normal(scale=1e-2, size=F.shape)
    assert guess_energy(mf, F + noise + noise.T, F) > 1e-6  # variational: above the converged energy
    with pytest.raises(ValueError, match="F_ref"):
        guess_energy(mf, F)
