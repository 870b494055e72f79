"""Spectral losses (hamnet.spectral) against PySCF: batched assembly, Löwdin, projector gradients."""

import numpy as np
import pytest
import scipy.linalg
import torch
from pyscf import gto, scf

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import GraphError, collate, molecule_graph
from hamnet.spectral import (SpectralLoss, lowdin, occupied_eigh, orthogonalized, padded_matrices,
                             rotate_lowdin)

WATER = "O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692"
CH4 = "C 0 0 0; H 0.63 0.63 0.63; H -0.63 -0.63 0.63; H -0.63 0.63 -0.63; H 0.63 -0.63 -0.63"


def _rhf(atom, basis):
    mol = gto.M(atom=atom, basis=basis, verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    return mol, mf.get_fock(), mf.get_ovlp()


@pytest.fixture(scope="module")
def pair():
    """Water and methane in def2-SVP (nao 24 and 34): PySCF F, S and one batch of both."""
    basis = OrbitalBasis("def2-svp", ["H", "C", "O"])
    mols, graphs = [], []
    for atom in (WATER, CH4):
        mol, F, S = _rhf(atom, "def2-svp")
        mols.append((mol, F, S))
        graphs.append(molecule_graph(mol.atom_charges(), mol.atom_coords(unit="Angstrom"), basis=basis,
                                     fock=F, overlap=S, nocc=mol.nelectron // 2))
    return basis, mols, collate(graphs)


def _orthogonal(batch, diag, offdiag):
    H = padded_matrices(diag, offdiag, batch)
    X = padded_matrices(batch[GK.LOWDIN_DIAG], batch[GK.LOWDIN_OFFDIAG], batch)
    ao = torch.arange(H.shape[-1])[None, :] < batch[GK.NAO][:, None]
    return orthogonalized(H, X + torch.diag_embed((~ao).double()), ao), ao


def test_lowdin_is_the_inverse_square_root():
    _, _, S = _rhf(WATER, "def2-svp")
    X = lowdin(S)
    np.testing.assert_allclose(X, X.T, atol=1e-13)
    np.testing.assert_allclose(X @ S @ X, np.eye(len(S)), atol=1e-10)
    with pytest.raises(ValueError, match="singular"):
        lowdin(np.ones((2, 2)))


def test_batched_assembly_matches_pyscf_eigenvalues(pair):
    basis, mols, batch = pair
    assert batch[GK.NAO].tolist() == [24, 34]
    H = padded_matrices(batch[GK.TARGET_DIAG], batch[GK.TARGET_OFFDIAG], batch)
    A, _ = _orthogonal(batch, batch[GK.TARGET_DIAG], batch[GK.TARGET_OFFDIAG])
    e = torch.linalg.eigvalsh(A).numpy()
    for m, (mol, F, S) in enumerate(mols):
        n = F.shape[0]
        np.testing.assert_array_equal(H[m, :n, :n].numpy(), F)
        assert not H[m, n:].any() and not H[m, :, n:].any()
        ref = scipy.linalg.eigh(F, S, eigvals_only=True)
        np.testing.assert_allclose(e[m, :n], ref, atol=1e-9, rtol=0)
        assert (e[m, n:] > ref.max() + 1.0).all()  # padding sorts above every real orbital
    # the same matrices as the per-molecule (looping) assembly of the basis
    for m, (mol, F, S) in enumerate(mols):
        a0, a1 = batch[GK.PTR][m : m + 2].tolist()
        p0, p1 = batch[GK.PAIR_PTR][m : m + 2].tolist()
        full = basis.assemble(batch[GK.TARGET_DIAG][a0:a1], batch[GK.TARGET_OFFDIAG][p0:p1],
                              batch[GK.Z][a0:a1].tolist())
        torch.testing.assert_close(H[m, : len(F), : len(F)], full, rtol=0, atol=0)


def test_loss_is_zero_at_the_target_and_positive_otherwise(pair):
    _, _, batch = pair
    loss = SpectralLoss(n_virtual=2)
    exact = loss({GK.DIAG: batch[GK.TARGET_DIAG], GK.OFFDIAG: batch[GK.TARGET_OFFDIAG]}, batch)
    assert float(exact[GK.LOSS_EIG]) < 1e-12 and float(exact[GK.LOSS_DENSITY]) < 1e-20
    torch.manual_seed(0)
    d = batch[GK.TARGET_DIAG] + 1e-3 * torch.randn_like(batch[GK.TARGET_DIAG])
    d = (0.5 * (d + d.transpose(-1, -2))).requires_grad_()
    o = batch[GK.TARGET_OFFDIAG].clone().requires_grad_()
    r = loss({GK.DIAG: d, GK.OFFDIAG: o}, batch)
    assert float(r[GK.LOSS_EIG].detach()) > 1e-6 and float(r[GK.LOSS_DENSITY].detach()) > 1e-10
    (r[GK.LOSS_EIG] + r[GK.LOSS_DENSITY]).backward()
    assert torch.isfinite(d.grad).all() and torch.isfinite(o.grad).all() and d.grad.abs().max() > 0


def test_density_loss_equals_the_alignment_form(pair):
    """||P_p - P_r||^2 / (2 nocc) == 1 - tr(P_p P_r) / nocc for rank-nocc projectors."""
    _, _, batch = pair
    A_ref, ao = _orthogonal(batch, batch[GK.TARGET_DIAG], batch[GK.TARGET_OFFDIAG])
    A = A_ref + 0.01 * torch.diag_embed(torch.linspace(0, 1, A_ref.shape[-1]).expand(2, -1) * ao)
    occ = torch.arange(A.shape[-1])[None, :] < batch[GK.NOCC][:, None]
    _, P = occupied_eigh(A, occ)
    _, P_r = occupied_eigh(A_ref, occ)
    nocc = batch[GK.NOCC].double()
    diff = ((P - P_r) ** 2).sum((-1, -2)) / (2 * nocc)
    align = 1 - (P * P_r).sum((-1, -2)) / nocc
    torch.testing.assert_close(diff, align, atol=1e-12, rtol=1e-8)
    torch.testing.assert_close(torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), nocc, atol=1e-12, rtol=0)


def test_gradcheck_projector_and_eigenvalues():
    torch.manual_seed(1)
    B, n = 2, 6
    A = torch.randn(B, n, n, dtype=torch.float64)
    A = (A + A.transpose(-1, -2)).requires_grad_()
    occ = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    e = torch.linalg.eigvalsh(A.detach())
    assert (e.diff(dim=-1) > 1e-3).all()  # non-degenerate: the generic formula applies
    W = torch.randn(B, n, n, dtype=torch.float64)
    w = torch.randn(B, n, dtype=torch.float64)

    def f(a):
        ev, P = occupied_eigh(a, occ, 1e-8)
        return (P * W).sum() + (ev * w).sum()

    assert torch.autograd.gradcheck(f, (A,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda a: occupied_eigh(a, occ, 1e-8)[1], (A,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("atom,basis", [(CH4, "sto-3g"), ("N 0 0 0; N 0 0 1.0977", "def2-svp")])
def test_degenerate_occupied_orbitals_give_finite_gradients(atom, basis):
    """CH4 (t2) and N2 (pi_u) have exactly degenerate occupied orbitals: the projector and
    occupied eigenvalue sums are smooth there, and so are our gradients (torch's eigenvector
    gradient divides by zero)."""
    mol, F, S = _rhf(atom, basis)
    X = torch.from_numpy(lowdin(S))
    nocc = mol.nelectron // 2
    A0 = X @ torch.from_numpy(F) @ X
    e0 = torch.linalg.eigvalsh(A0)
    assert (e0[1:nocc].diff() < 1e-8).any()  # degenerate occupied orbitals
    assert e0[nocc] - e0[nocc - 1] > 0.1  # a real gap
    rng = np.random.default_rng(0)
    n = len(F)

    def sym(scale):
        m = rng.normal(scale=scale, size=(n, n))
        return torch.from_numpy(m + m.T)

    ref = A0 + sym(1e-2)  # a reference the degenerate point is compared with
    occ = torch.arange(n)[None, :] < nocc
    with torch.no_grad():
        _, P_ref = occupied_eigh(ref[None], occ)

    def loss(A):
        e, P = occupied_eigh(A[None], occ)
        return ((P - P_ref) ** 2).sum() + e[0, :nocc].sum()

    A = A0.clone().requires_grad_()
    loss(A).backward()
    assert torch.isfinite(A.grad).all()
    V = sym(1.0)
    h = 1e-5
    fd = (loss(A0 + h * V) - loss(A0 - h * V)) / (2 * h)
    assert float((A.grad * V).sum()) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
    # eigenvalue-only gradients of torch itself are finite at the degeneracy too
    B = A0.clone().requires_grad_()
    (torch.linalg.eigvalsh(B)[:nocc] * torch.arange(1.0, nocc + 1, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(B.grad).all()


def test_rotated_lowdin_blocks_match_pyscf_at_the_rotated_geometry():
    from hamnet.symmetry import random_rotations

    basis = OrbitalBasis("def2-svp", ["H", "O"])
    mol, F, S = _rhf(WATER, "def2-svp")
    Z, pos = mol.atom_charges(), mol.atom_coords(unit="Angstrom")
    g = molecule_graph(Z, pos, basis=basis, fock=F, overlap=S, nocc=5)
    R = random_rotations(1, generator=torch.Generator().manual_seed(3)).double()
    rot = rotate_lowdin(collate([g]), basis, R)
    mol_r = gto.M(atom=[(int(z), p) for z, p in zip(Z, pos @ R[0].numpy().T)], basis="def2-svp", unit="A")
    X_r = torch.from_numpy(lowdin(mol_r.intor("int1e_ovlp")))
    got = padded_matrices(rot[GK.LOWDIN_DIAG], rot[GK.LOWDIN_OFFDIAG], rot)[0]
    torch.testing.assert_close(got, X_r, atol=1e-9, rtol=0)


def test_graph_spectral_inputs_are_checked():
    basis = OrbitalBasis("sto-3g", ["H", "O"])
    mol, F, S = _rhf(WATER, "sto-3g")
    Z, pos = mol.atom_charges(), mol.atom_coords(unit="Angstrom")
    with pytest.raises(GraphError, match="OrbitalBasis"):
        molecule_graph(Z, pos, overlap=S)
    with pytest.raises(GraphError, match="overlap matrix of shape"):
        molecule_graph(Z, pos, basis=basis, overlap=S[:3, :3])
    with pytest.raises(GraphError, match="nocc"):
        molecule_graph(Z, pos, basis=basis, overlap=S, nocc=7)
    g = molecule_graph(Z, pos, basis=basis, fock=F, overlap=S)  # nocc: neutral closed shell
    assert g[GK.NOCC].tolist() == [5] and g[GK.LOWDIN_DIAG].dtype == torch.float64
    plain = molecule_graph(Z, pos, basis=basis, fock=F)
    with pytest.raises(GraphError, match="not all"):
        collate([g, plain])
