"""The SO(2)-convolution backbone and the sparse pair path (hamnet.nn.so2, hamnet.nn.sparse_pairs).

The shared backbone tests (exact O(3) equivariance, batching, dtypes, files) run for
``backbone: so2`` in tests/test_backbones.py; here: the pieces (Wigner matrices, frames,
the m-blocked map, neighbour search, sparse assembly) and the model with a pair cutoff.
"""

import copy

import numpy as np
import pytest
import torch
from e3nn import o3

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis, wigner_D_e3nn
from hamnet.errors import ConfigError
from hamnet.graph import collate, molecule_graph
from hamnet.loss import HamiltonianLoss
from hamnet.model import build_model
from hamnet.nn import so2
from hamnet.nn.sparse_pairs import dense_pair_rows, neighbor_pairs, reverse_pairs
from hamnet.testing import TEST_POS, TEST_WATER, TEST_Z, assert_equivariant, irreps_rotation, random_rotation

SMALL = dict(backbone="so2", tracegrad=True, num_channels=3, radial_hidden=16, tracegrad_channels=3, tracegrad_hidden=16,
             tracegrad_dim=8, tracegrad_alpha=1.0)
# Two waters 4.3 Angstrom apart plus formaldehyde: a pair cutoff of 3 Angstrom drops many pairs.
CLUSTER_Z = np.array([8, 1, 1, 8, 1, 1, 6, 8, 1, 1])
CLUSTER_POS = np.array([
    [0.00, 0.00, 0.12], [0.00, 0.76, -0.47], [0.02, -0.75, -0.46],
    [4.30, 0.10, 0.20], [4.85, 0.80, -0.10], [4.70, -0.70, 0.10],
    [1.90, 3.10, -1.20], [2.10, 4.25, -1.45], [0.95, 2.70, -0.90], [2.70, 2.45, -1.05],
])


def _model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    return build_model("def2-svp", ["H", "C", "N", "O", "F"], dtype=dtype, xc="pbe", **{**SMALL, **kw}).eval()


@pytest.fixture(scope="module")
def model():
    return _model(pair_cutoff=3.0)


def _predict(m):
    return lambda Z, pos: m.predict((Z, pos))


# ---- pieces -----------------------------------------------------------------------------------


def test_edge_frames_align_every_direction_with_y_and_are_proper():
    v = torch.cat([torch.randn(200, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64),
                   -torch.eye(3, dtype=torch.float64), torch.tensor([[1.0, 1e-9, 0.0]], dtype=torch.float64)])
    R = so2.edge_frames(v)
    y = torch.einsum("eij,ej->ei", R, v / v.norm(dim=-1, keepdim=True))
    assert (y - torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)).abs().max() < 1e-14
    assert (R @ R.transpose(1, 2) - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-14
    assert (torch.linalg.det(R) - 1).abs().max() < 1e-14


def test_batched_wigner_matrices_equal_the_basis_module_to_float64_roundoff():
    torch.set_default_dtype(torch.float64)
    try:
        w = so2.WignerD(4)
    finally:
        torch.set_default_dtype(torch.float32)
    rng = np.random.default_rng(1)
    Rs = np.stack([random_rotation(rng) for _ in range(6)])
    D = w(torch.from_numpy(Rs))
    for l in range(5):
        for k in range(6):
            assert np.abs(D[l][k].numpy() - wigner_D_e3nn(l, Rs[k])).max() < 1e-13
    assert np.abs(D[3][0].numpy() - np.eye(7)).max() > 0.1  # not trivially the identity


def _conv(irreps_in, irreps_out, seed=0):
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    try:
        lin, w = so2.SO2Linear(irreps_in, irreps_out, 4, 8), so2.WignerD(o3.Irreps(irreps_in).lmax)
    finally:
        torch.set_default_dtype(torch.float32)
    lin_in, lin_out = so2.LLayout(irreps_in), so2.LLayout(irreps_out)
    rbf = torch.rand(5, 4, dtype=torch.float64)

    def f(x, vec, frames=so2.edge_frames):
        D = w(frames(vec))
        return lin_out.rotate(lin(lin_in.rotate(x, D), rbf), D, inverse=True)

    return lin, f


IRREPS = "2x0e+1x0o+2x1o+1x1e+2x2e+1x2o+1x3o"


def test_so2_convolution_is_o3_equivariant_and_independent_of_the_frame():
    lin, f = _conv(IRREPS, IRREPS)
    rng = np.random.default_rng(0)
    x = torch.randn(5, o3.Irreps(IRREPS).dim, dtype=torch.float64)
    vec = torch.randn(5, 3, dtype=torch.float64)
    y = f(x, vec)
    assert y.abs().max() > 0.1
    for R in [random_rotation(rng), random_rotation(rng, improper=True), -np.eye(3)]:
        D = torch.from_numpy(irreps_rotation(IRREPS, R))
        Rt = torch.from_numpy(R)
        assert (f(x @ D.T, vec @ Rt.T) - y @ D.T).abs().max() < 1e-12

    def spun(v):  # another frame: the aligned one, then a rotation about y
        c, s = np.cos(0.7), np.sin(0.7)
        Ry = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
        return Ry @ so2.edge_frames(v)

    assert (f(x, vec, spun) - y).abs().max() < 1e-12


def test_the_equivariance_checks_fail_for_a_broken_convolution():
    """Without the parity rule (A, W_0 joining irreps of opposite s) inversion breaks; without the
    edge frame (identity 'rotations') the map is only SO(2)-equivariant and rotations break."""
    lin, f = _conv(IRREPS, IRREPS)
    x = torch.randn(5, o3.Irreps(IRREPS).dim, dtype=torch.float64)
    vec = torch.randn(5, 3, dtype=torch.float64)
    D = torch.from_numpy(irreps_rotation(IRREPS, -np.eye(3)))
    for m in lin.active:
        getattr(lin, f"mask_{m}").fill_(1.0)
    assert (f(x @ D.T, -vec) - f(x, vec) @ D.T).abs().max() > 1e-3
    lin, f = _conv(IRREPS, IRREPS)
    R = random_rotation(np.random.default_rng(3))
    D = torch.from_numpy(irreps_rotation(IRREPS, R))
    identity = lambda v: torch.eye(3, dtype=v.dtype).expand(len(v), 3, 3)  # noqa: E731
    err = (f(x @ D.T, vec @ torch.from_numpy(R).T, identity) - f(x, vec, identity) @ D.T).abs().max()
    assert err > 1e-3


def test_fast_gate_equals_the_e3nn_gate():
    from hamnet.nn.interaction import GateActivation, feature_irreps

    irreps = feature_irreps(OrbitalBasis("def2-svp", ["H", "O"]).block_irreps, 3)
    fast, ref = so2.FastGate(irreps), GateActivation(irreps)
    assert fast.irreps_in.simplify() == ref.irreps_in.simplify() and fast.irreps_out == ref.irreps_out
    x = torch.randn(7, ref.irreps_in.dim)
    assert (fast(x) - ref(x)).abs().max() < 1e-5 and fast(x).abs().max() > 0.1


def test_neighbor_pairs_equal_brute_force_per_molecule():
    rng = np.random.default_rng(0)
    sizes = [1, 7, 40, 2]
    pos = np.concatenate([rng.uniform(0, 6, size=(n, 3)) for n in sizes])
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    i, j = neighbor_pairs(torch.from_numpy(pos), torch.from_numpy(ptr), 2.5)
    want = []
    for a0, a1 in zip(ptr[:-1], ptr[1:]):
        d = np.linalg.norm(pos[a0:a1, None] - pos[None, a0:a1], axis=-1)
        ii, jj = np.nonzero((d < 2.5) & ~np.eye(a1 - a0, dtype=bool))
        want += list(zip(ii + a0, jj + a0))
    assert list(zip(i.tolist(), j.tolist())) == sorted(want) and len(want) > 50
    rev = reverse_pairs(i, j, len(pos))
    assert torch.equal(i[rev], j) and torch.equal(j[rev], i)


def test_dense_pair_rows_point_at_the_same_pair_in_the_batch():
    graphs = [molecule_graph(*TEST_WATER), molecule_graph(np.array([9]), np.zeros((1, 3))),
              molecule_graph(TEST_Z, TEST_POS)]
    b = collate(graphs)
    i, j = neighbor_pairs(b[GK.POS], b[GK.PTR], 1.9)
    rows = dense_pair_rows(i, j, b[GK.BATCH], b[GK.PTR], b[GK.PAIR_PTR])
    assert torch.equal(b[GK.PAIR_INDEX][:, rows], torch.stack([i, j])) and len(i) > 8


# ---- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tracegrad", [True, False])
def test_model_with_a_pair_cutoff_is_exactly_equivariant(tracegrad):
    m = _model(pair_cutoff=3.0, tracegrad=tracegrad)
    errors = assert_equivariant(_predict(m), m.basis, CLUSTER_Z, CLUSTER_POS, atol=1e-9)
    assert errors["scale"] > 1e-2


def test_a_model_with_a_broken_layer_fails_the_equivariance_test(model):
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, so2.SO2Linear):
            for k in mod.active:
                getattr(mod, f"mask_{k}").fill_(1.0)
    with pytest.raises(AssertionError, match="inversion"):
        assert_equivariant(_predict(m), m.basis, CLUSTER_Z, CLUSTER_POS, atol=1e-9)


def test_sparse_prediction_equals_the_dense_batch_contract_and_drops_far_pairs(model):
    mols = [(CLUSTER_Z, CLUSTER_POS), TEST_WATER, (np.array([9]), np.zeros((1, 3)))]
    b = collate([molecule_graph(Z, pos) for Z, pos in mols])
    with torch.no_grad():
        dense = model.assemble(model(b), b)
    m = copy.deepcopy(model)
    m.pair_chunk = 7  # several chunks per molecule
    for F, Fd, (Z, pos) in zip(m.predict_batch(mols), dense, mols):
        assert np.abs(F - Fd.numpy()).max() < 1e-12 and np.array_equal(F, F.T)
    F = m.predict((CLUSTER_Z, CLUSTER_POS))
    off = m.basis.layout(CLUSTER_Z).atom_offsets
    d = np.linalg.norm(CLUSTER_POS[:, None] - CLUSTER_POS[None], axis=-1)
    far = 0
    for i in range(len(CLUSTER_Z)):
        for j in range(len(CLUSTER_Z)):
            block = F[off[i] : off[i + 1], off[j] : off[j + 1]]
            assert (np.abs(block).max() == 0) == (i != j and d[i, j] >= 3.0), (i, j)
            far += d[i, j] >= 3.0
    assert far > 20


def test_traces_outside_the_pair_cutoff_are_masked(model):
    with torch.no_grad():
        out = model(molecule_graph(CLUSTER_Z, CLUSTER_POS))
    d = np.linalg.norm(CLUSTER_POS[:, None] - CLUSTER_POS[None], axis=-1)
    far = torch.from_numpy(d[OrbitalBasis.pair_index(len(CLUSTER_Z))] >= 3.0)
    assert not out[GK.OFFDIAG_TRACE_MASK][far].any() and out[GK.OFFDIAG_TRACE_MASK][~far].any()
    assert (out[GK.OFFDIAG][far] == 0).all() and out[GK.OFFDIAG][~far].abs().max() > 1e-3


def test_training_steps_lower_the_loss_and_reach_every_parameter():
    from pyscf import scf

    from hamnet.molecule import build_mole

    m = build_model("sto-3g", ["H", "O"], dtype=torch.float64, **SMALL).train()
    Z, pos = TEST_WATER
    F = scf.RHF(build_mole(Z, pos, "sto-3g")).run(conv_tol=1e-9, verbose=0).get_fock()
    batch = collate([molecule_graph(Z, pos, basis=m.basis, fock=F)])
    m.fit_reference([batch])
    loss_fn = HamiltonianLoss(m.basis)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    history = []
    for step in range(10):
        opt.zero_grad()
        parts = loss_fn(m(batch), batch)
        parts[GK.LOSS].backward()
        if step == 0:
            silent = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
            assert not silent, silent
        opt.step()
        history.append(float(parts[GK.LOSS].detach()))
    assert history[-1] < 0.75 * history[0] and history[0] > 0


def test_so2_config_is_validated_and_keeps_the_default_backbone():
    assert build_model("sto-3g", ["H"]).backbone == "so2"  # the default backbone
    m = build_model("sto-3g", ["H"], backbone="so2")
    assert m.config["pair_cutoff"] == 10.0 and not m.tracegrad and m.equivariant  # TraceGrad is off by default
    dense = build_model("sto-3g", ["H", "O"], backbone="so2", pair_cutoff=None, dtype=torch.float64)
    assert dense.config["pair_cutoff"] is None
    far = (np.array([8, 1, 1, 8, 1, 1]), np.concatenate([TEST_WATER[1], TEST_WATER[1] + [30.0, 0, 0]]))
    F, off = dense.predict(far), dense.basis.layout(far[0]).atom_offsets
    assert np.abs(F[off[0] : off[1], off[3] : off[4]]).max() > 1e-6  # 30 Angstrom apart, still a block
    with pytest.raises(ConfigError, match="model.pair_cutoff must be > 0"):
        build_model("sto-3g", ["H"], backbone="so2", pair_cutoff=-1.0)
    with pytest.raises(ConfigError, match="model.pet_dim is a hyperparameter of another backbone"):
        build_model("sto-3g", ["H"], backbone="so2", pet_dim=7)


def test_a_tiny_training_run_with_backbone_so2_finishes_and_its_model_loads(tmp_path):
    from hamnet.model import load_model
    from hamnet.testing import TINY_MODEL, WATER_POS, WATER_Z, make_store, tiny_config
    from hamnet.train.loop import run

    store = make_store(tmp_path / "water.lmdb")
    cfg = tiny_config(store, model={**TINY_MODEL, "backbone": "so2"})
    res = run(cfg, tmp_path / "run", progress=False)
    assert res.status == "finished" and np.isfinite(res.test["H_mae"])
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.backbone == "so2" and model.config["pair_cutoff"] == 10.0
    F = model.predict((WATER_Z, WATER_POS))
    assert F.shape == (7, 7) and np.array_equal(F, F.T)
