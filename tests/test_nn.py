"""Building blocks of hamnet.nn, each tested for equivariance in float64 and against hand values."""

import contextlib

import numpy as np
import pytest
import torch
from e3nn import o3
from pyscf import gto

from hamnet.basis import OrbitalBasis, ao_rotation
from hamnet.nn.embedding import ElementEmbedding
from hamnet.nn.heads import BlockHead
from hamnet.nn.interaction import Interaction, feature_irreps
from hamnet.nn.pair import PairBlock
from hamnet.nn.radial import BesselBasis, GaussianBasis, PolynomialCutoff
from hamnet.nn.tracegrad import ShellPairTraces, TraceGrad
from hamnet.testing import irreps_rotation, random_rotation


@contextlib.contextmanager
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn constants exact in float64
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _t(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


IRREPS = o3.Irreps("3x0e+3x1o+3x1e+3x2e+3x2o")
ROTATIONS = [random_rotation(np.random.default_rng(s), improper=s % 2 == 1) for s in range(4)]


@pytest.mark.parametrize(
    "basis, elements, lmax",
    [("sto-3g", ["H", "C", "O"], 2), ("def2-svp", ["H", "C", "N", "O", "F"], 4), ("cc-pvtz", ["H", "C"], 6)],
)
def test_feature_irreps_cover_every_block_irrep(basis, elements, lmax):
    block = OrbitalBasis(basis, elements).block_irreps
    feats = feature_irreps(block, 3)
    assert block.lmax == lmax == feats.lmax
    assert {ir for _, ir in feats} == {ir for _, ir in block} | {o3.Irrep("0e")}
    assert all(mul == 3 for mul, _ in feats)


def test_polynomial_cutoff_is_smooth_and_bessel_matches_formula():
    env = PolynomialCutoff(5.0)
    r = torch.tensor([0.0, 2.5, 5.0 * (1 - 1e-7), 5.0, 7.0], dtype=torch.float64, requires_grad=True)
    u = env(r)
    (du,) = torch.autograd.grad(u.sum(), r, create_graph=True)
    (d2u,) = torch.autograd.grad(du.sum(), r)
    assert u[0] == 1 and u[3] == 0 and u[4] == 0
    assert abs(u[2]) < 1e-12 and abs(du[2]) < 1e-10 and abs(d2u[2]) < 1e-5
    x = 0.5  # u(x) = 1 - 28 x^6 + 48 x^7 - 21 x^8 for p = 6
    assert abs(u[1].item() - (1 - 28 * x**6 + 48 * x**7 - 21 * x**8)) < 1e-14
    rb = np.array([0.3, 1.7, 4.9])
    e = BesselBasis(5.0, 4)(_t(rb)).numpy()
    n = np.arange(1, 5)
    expected = np.sqrt(2 / 5.0) * np.sin(n * np.pi * rb[:, None] / 5.0) / rb[:, None]
    assert np.allclose(e, expected, rtol=1e-6)
    gb = GaussianBasis(10.0, 11)(_t([3.0])).numpy()[0]
    assert np.isclose(gb[3], 1.0) and np.isclose(gb[4], np.exp(-1.0))


def _edges(rng, n):
    pos = rng.normal(size=(n, 3)) * 1.5
    ii, jj = np.nonzero(~np.eye(n, dtype=bool))
    return pos, torch.from_numpy(np.stack([ii, jj]))


@pytest.mark.parametrize("R", ROTATIONS)
def test_interaction_is_equivariant(R):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    with float64():
        irreps_sh = o3.Irreps.spherical_harmonics(2)
        layer = Interaction(IRREPS, irreps_sh, IRREPS, 3, 6, 16, 3.0)
        torch.nn.init.normal_(layer.radial.net[-1].weight)
    n = 5
    pos, edge_index = _edges(rng, n)
    h = _t(rng.normal(size=(n, IRREPS.dim)))
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1, 0]), 3).double()
    radial = BesselBasis(4.0, 6)

    def run(p, x):
        vec = _t(p)[edge_index[0]] - _t(p)[edge_index[1]]
        sh = o3.spherical_harmonics(irreps_sh, vec, normalize=True, normalization="component")
        L = vec.norm(dim=-1)
        return layer(x, onehot, edge_index, sh, radial(L), PolynomialCutoff(4.0)(L))

    D = _t(irreps_rotation(IRREPS, R))
    out = run(pos, h)
    assert out.abs().max() > 1e-2
    assert layer.residual
    err = (run(pos @ R.T, h @ D.T) - out @ _t(irreps_rotation(layer.irreps_out, R)).T).abs().max()
    assert err < 1e-12


@pytest.mark.parametrize("R", ROTATIONS[:2])
def test_pair_block_is_equivariant(R):
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    with float64():
        irreps_sh = o3.Irreps.spherical_harmonics(2)
        block = PairBlock(IRREPS, irreps_sh, IRREPS, 5, 16)
    n = 4
    pos, pair_index = _edges(rng, n)
    h = _t(rng.normal(size=(n, IRREPS.dim)))
    gb = GaussianBasis(6.0, 5)

    def run(p, x):
        vec = _t(p)[pair_index[1]] - _t(p)[pair_index[0]]
        sh = o3.spherical_harmonics(irreps_sh, vec, normalize=True, normalization="component")
        return block(x, pair_index, sh, gb(vec.norm(dim=-1)))

    out = run(pos, h)
    D = _t(irreps_rotation(IRREPS, R))
    err = (run(pos @ R.T, h @ D.T) - out @ _t(irreps_rotation(block.irreps_out, R)).T).abs().max()
    assert out.abs().max() > 1e-2 and err < 1e-12


@pytest.fixture(scope="module")
def tracegrad():
    torch.manual_seed(0)
    with float64():
        return TraceGrad(IRREPS, n_traces=7, channels=3, hidden=16, depth=3, dim_z=8, alpha=1.0, eps=1e-12)


@pytest.mark.parametrize("R", ROTATIONS)
def test_tracegrad_update_is_equivariant_and_traces_invariant(tracegrad, R):
    f = _t(np.random.default_rng(2).normal(size=(6, IRREPS.dim)))
    D = _t(irreps_rotation(IRREPS, R))
    f1, t1, _ = tracegrad(f)
    f2, t2, _ = tracegrad(f @ D.T)
    assert (f1 - f).abs().max() > 0.1  # the update is not negligible, so the test can fail
    assert (f2 - f1 @ D.T).abs().max() < 1e-12
    assert (t2 - t1).abs().max() < 1e-12


def test_tracegrad_update_is_the_normalized_gradient_of_z(tracegrad):
    """v = d(sum z)/df, checked by central finite differences (independent of autograd)."""
    f = _t(np.random.default_rng(3).normal(size=(2, IRREPS.dim)))
    f1, _, _ = tracegrad(f)
    step = f1 - f  # alpha = 1: normalized gradient
    h = 1e-5
    grad = torch.zeros_like(f)
    with torch.no_grad():
        for a in range(f.shape[0]):
            for c in range(f.shape[1]):
                e = torch.zeros_like(f)
                e[a, c] = h
                grad[a, c] = (tracegrad.encoder(f + e).sum() - tracegrad.encoder(f - e).sum()) / (2 * h)
    for sl, (mul, ir) in zip(IRREPS.slices(), IRREPS):
        g = grad[:, sl].reshape(2, mul, ir.dim)
        rms = g.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()  # [2, 1, 1]
        # finite differences are good to ~1e-9 absolute; normalizing divides that by rms
        tol = 1e-7 * (1 + 1 / rms)
        assert ((step[:, sl].reshape(2, mul, ir.dim) - g / rms).abs() < tol).all()


def test_tracegrad_autograd_modes(tracegrad):
    f = _t(np.random.default_rng(4).normal(size=(3, IRREPS.dim)))
    with torch.no_grad():
        f_ng, t_ng, _ = tracegrad(f)  # gradients enabled internally; nothing returned needs grad
    assert not f_ng.requires_grad and not t_ng.requires_grad
    fg = f.clone().requires_grad_(True)
    f1, t1, _ = tracegrad(fg)
    assert torch.allclose(f1, f_ng, atol=1e-14) and torch.allclose(t1, t_ng, atol=1e-14)
    # Training: the update keeps its graph, so the encoder learns through v (double backward).
    tracegrad.zero_grad()
    f1.pow(2).sum().backward()
    enc_grad = sum(p.grad.abs().sum() for p in tracegrad.encoder.parameters() if p.grad is not None)
    assert enc_grad > 0 and tracegrad.alpha.grad.abs().sum() > 0
    assert fg.grad is not None and fg.grad.abs().sum() > 0
    tracegrad.zero_grad()


def test_empty_inputs_pass_through(tracegrad):
    f0, t0, _ = tracegrad(torch.zeros(0, IRREPS.dim, dtype=torch.float64))
    assert f0.shape == (0, IRREPS.dim) and t0.shape == (0, 7)


def test_shell_pair_traces_match_hand_computation():
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    traces = ShellPairTraces(basis.slot_pair_id, basis.n_slot_pairs).double()
    B = np.random.default_rng(5).normal(size=(3, basis.n_pad, basis.n_pad))
    got = traces(_t(B)).numpy()
    starts = np.cumsum([0] + [2 * l + 1 for l in basis.pad_ls])
    ns = len(basis.pad_ls)
    for a in range(ns):
        for b in range(ns):
            sub = B[:, starts[a] : starts[a + 1], starts[b] : starts[b + 1]]
            T = np.einsum("nij,nij->n", sub, sub)  # tr(H_s H_s^T)
            assert np.allclose(got[:, a * ns + b], np.sqrt(T / sub[0].size), rtol=1e-13)
    mask = traces.mask(torch.from_numpy(basis.block_mask("H", "O")))
    assert mask.sum() == 3 * 6  # H: 2s1p = 3 radial functions, O: 3s2p1d = 6


@pytest.mark.parametrize("seed", [0, 1])
def test_traces_of_pyscf_matrices_are_invariant(seed, water):
    """Trace labels of PySCF's own overlap and core Hamiltonian do not change under O(3)."""
    R = random_rotation(np.random.default_rng(seed), improper=bool(seed))
    _, pos = water
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    traces = ShellPairTraces(basis.slot_pair_id, basis.n_slot_pairs).double()
    labels = []
    for p in (pos, pos @ R.T + 1.0):
        mol = gto.M(atom=[("O", p[0]), ("H", p[1]), ("H", p[2])], basis="def2-svp", unit="Angstrom")
        for M in (mol.intor("int1e_ovlp"), mol.intor("int1e_kin") + mol.intor("int1e_nuc")):
            diag, off = basis.split(M, [8, 1, 1])
            labels.append(traces(_t(np.concatenate([diag, off]))))
        D = ao_rotation(mol, R)
    assert labels[1].max() > 1.0  # core Hamiltonian of O 1s is tens of Hartree
    assert (labels[2] - labels[0]).abs().max() < 1e-12
    assert (labels[3] - labels[1]).abs().max() < 1e-11
    # ... while the blocks themselves do change.
    assert np.abs(D - np.eye(len(D))).max() > 0.1


def test_block_head_reference_sets_the_invariant_part():
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    with float64():
        head = BlockHead(feature_irreps(basis.block_irreps, 2), basis, n_elements=2)
    ref = _t(np.random.default_rng(6).normal(size=(2, len(head.scalar_index))))
    head.set_reference(ref)
    with torch.no_grad():
        for p in head.linear.parameters():
            p.zero_()
    elem = torch.tensor([1, 0, 0])
    B = head(torch.zeros(3, head.irreps_in.dim, dtype=torch.float64), elem)
    x = basis.padded_to_irreps(B)
    assert torch.allclose(x[:, head.scalar_index], ref[elem], atol=1e-14)
    x[:, head.scalar_index] = 0
    assert x.abs().max() < 1e-14
    with pytest.raises(ValueError, match="lack irreps"):
        BlockHead(o3.Irreps("2x0e+2x1o"), basis)


def test_element_embedding_index_and_unknown_element():
    emb = ElementEmbedding(["O", "H", 6], o3.Irreps("4x0e"))
    assert emb.elements == (1, 6, 8)
    assert emb.index(torch.tensor([8, 1, 6, 1])).tolist() == [2, 0, 1, 0]
    with pytest.raises(ValueError, match=r"\[7, 200\] not supported"):
        emb.index(torch.tensor([1, 7, 200]))
