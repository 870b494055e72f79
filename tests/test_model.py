"""The equivariant model beyond the shared backbone tests (tests/test_backbones.py):
traces, TraceGrad on/off, inputs, training, files, hyperparameter errors."""

import copy

import numpy as np
import pytest
import torch
from pyscf import gto, scf
from pyscf.data import nist

from hamnet import graph_keys as GK
from hamnet.basis import BasisError, OrbitalBasis
from hamnet.graph import GraphError, collate, molecule_graph
from hamnet.loss import HamiltonianLoss
from hamnet.model import ConfigError, ModelFileError, build_model, load_model, model_payload, save_model
from hamnet.testing import ao_permutation, assert_equivariant, random_rotation

ELEMENTS = ["H", "C", "N", "O", "F"]
# Tiny but complete: every irrep type of def2-SVP blocks, two layers, TraceGrad on node and pair.
SMALL = dict(
    backbone="equivariant",  # this file tests the e3nn network (the default backbone is so2)
    num_channels=3, radial_hidden=16, tracegrad_channels=3, tracegrad_hidden=16, tracegrad_dim=8, tracegrad_alpha=1.0
)
# Carbamoyl fluoride H2N-C(=O)-F, slightly distorted (no symmetry), Angstrom.
HCNOF_Z = np.array([6, 8, 9, 7, 1, 1])
HCNOF_POS = np.array(
    [
        [0.000, 0.000, 0.000],
        [1.190, 0.150, 0.020],
        [-0.700, 1.120, -0.050],
        [-0.680, -1.160, 0.030],
        [-1.690, -1.170, 0.100],
        [-0.180, -2.030, -0.060],
    ]
)
from hamnet.testing import WATER_POS, WATER_Z  # noqa: E402


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        tg: build_model("def2-svp", ELEMENTS, tracegrad=tg, dtype=torch.float64, xc="b3lyp", **SMALL)
        for tg in (True, False)
    }


@pytest.fixture(params=[True, False], ids=["tracegrad", "plain"])
def model(request, models):
    return models[request.param]


def _predict(model):
    return lambda Z, pos: model.predict((Z, pos))


def test_equivariance_helper_catches_a_non_equivariant_model(model):
    def broken(Z, pos):  # depends on the absolute x coordinate of atom 0
        return model.predict((Z, pos)) + 1e-6 * pos[0, 0] * np.eye(model.basis.layout(Z).nao)

    with pytest.raises(AssertionError, match="translation"):
        assert_equivariant(broken, model.basis, HCNOF_Z, HCNOF_POS, atol=1e-9)


def test_trace_predictions_are_invariant_and_permute_with_atoms(models):
    model = models[True]
    rng = np.random.default_rng(3)
    R, t = random_rotation(rng, improper=True), rng.normal(size=3)
    perm = rng.permutation(len(HCNOF_Z))
    with torch.no_grad():
        out0 = model(molecule_graph(HCNOF_Z, HCNOF_POS))
        out1 = model(molecule_graph(HCNOF_Z[perm], HCNOF_POS[perm] @ R.T + t))
    n = len(HCNOF_Z)
    assert out0[GK.DIAG_TRACE].abs().max() > 0.01
    assert (out1[GK.DIAG_TRACE] - out0[GK.DIAG_TRACE][perm]).abs().max() < 1e-10
    ii, jj = OrbitalBasis.pair_index(n)
    row = {(i, j): k for k, (i, j) in enumerate(zip(ii, jj))}
    old_rows = [row[(perm[i], perm[j])] for i, j in zip(ii, jj)]
    assert (out1[GK.OFFDIAG_TRACE] - out0[GK.OFFDIAG_TRACE][old_rows]).abs().max() < 1e-10
    # Shell pair (a, b) of H_ij and (b, a) of H_ji share one prediction, like their labels.
    assert torch.equal(out0[GK.DIAG_TRACE_MASK], out1[GK.DIAG_TRACE_MASK][np.argsort(perm)])


def test_plain_model_has_no_traces_and_same_backbone_and_heads(models):
    model, tg = models[False], models[True]
    plain = {k: v.shape for k, v in model.state_dict().items()}
    with_tg = {k: v.shape for k, v in tg.state_dict().items() if not k.startswith("tracegrad_")}
    assert plain == with_tg
    with torch.no_grad():
        out = model(molecule_graph(WATER_Z, WATER_POS))
    assert GK.DIAG_TRACE not in out and GK.OFFDIAG_TRACE not in out


def test_predict_accepts_ase_mole_and_tuple_and_is_symmetric(model):
    from ase import Atoms

    F = model.predict((["O", "H", "H"], WATER_POS))
    assert F.dtype == np.float64 and np.array_equal(F, F.T)
    F_ase = model.predict(Atoms("OH2", positions=WATER_POS))
    mol = gto.M(atom=[(s, p / nist.BOHR) for s, p in zip("OHH", WATER_POS)], unit="Bohr", basis="def2-svp")
    F_mol = model.predict(mol)
    assert F.shape == (mol.nao, mol.nao)
    assert np.abs(F_ase - F).max() < 1e-12 and np.abs(F_mol - F).max() < 1e-12


@pytest.mark.parametrize(
    "molecule, error, match",
    [
        (([8, 17], [[0, 0, 0], [1.5, 0, 0]]), GraphError, "Cl not supported"),
        (([8, 1], [[0, 0, 0], [np.nan, 0, 0]]), GraphError, "NaN"),
        (([8, 1], [[0, 0, 0], [0.05, 0, 0]]), GraphError, "0.05 Angstrom apart"),
        (([], np.zeros((0, 3))), GraphError, "at least one atom"),
        (gto.M(atom="O 0 0 0; H 0 0.76 0.5; H 0 -0.76 0.5", basis="sto-3g"), BasisError, "differs"),
        (gto.M(atom="O 0 0 0; H 0 0.76 0.5; H 0 -0.76 0.5", basis="def2-svp", cart=True), BasisError, "Cartesian"),
    ],
)
def test_bad_input_raises_clear_error(model, molecule, error, match):
    with pytest.raises(error, match=match):
        model.predict(molecule)


def _water_fock():
    mol = gto.M(atom=list(zip("OHH", WATER_POS)), basis="def2-svp", unit="Angstrom", verbose=0)
    mf = scf.RHF(mol).run(conv_tol=1e-9)
    return mf.get_fock()


def test_a_few_optimisation_steps_lower_the_loss(model):
    m = copy.deepcopy(model).train()
    batch = collate([molecule_graph(WATER_Z, WATER_POS, basis=m.basis, fock=_water_fock())])
    loss_fn = HamiltonianLoss(m.basis, trace_weight=1.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    history = []
    for _ in range(15):
        opt.zero_grad()
        parts = loss_fn(m(batch), batch)
        parts[GK.LOSS].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in parts.items()})
    assert history[-1][GK.LOSS] < 0.75 * history[0][GK.LOSS]
    assert history[-1][GK.LOSS_H] < history[0][GK.LOSS_H]
    if m.tracegrad:
        assert history[0][GK.LOSS_T] > 0 and history[-1][GK.LOSS_T] < history[0][GK.LOSS_T]
    else:
        assert history[0][GK.LOSS_T] == 0


def test_fit_reference_removes_the_atomic_offsets(model):
    m = copy.deepcopy(model)
    g = molecule_graph(WATER_Z, WATER_POS, basis=m.basis, fock=_water_fock())
    loss_fn = HamiltonianLoss(m.basis)
    with torch.no_grad():
        before = loss_fn(m(g), g)
        m.fit_reference([g])
        after = loss_fn(m(g), g)
    assert after[GK.LOSS_H] < 0.5 * before[GK.LOSS_H]
    if m.tracegrad:  # the trace decoder starts from the mean label per element (pair)
        assert after[GK.LOSS_T] < 0.5 * before[GK.LOSS_T]
    o = m.embedding.index(torch.tensor([8]))
    assert m.diag_head.reference[o].abs().max() > 5.0  # O 1s is about -20 Hartree


def test_no_autograd_graph_leaks_from_predict_and_grad_flows_in_training(model):
    g = molecule_graph(WATER_Z, WATER_POS)
    with torch.no_grad():
        out = model(g)
    assert not any(v.requires_grad for v in out.values())
    out = model(g)
    assert out[GK.DIAG].requires_grad and out[GK.OFFDIAG].requires_grad


def test_save_load_round_trip_and_bad_files(model, tmp_path):
    path = tmp_path / "sub" / "model.pt"
    save_model(model, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left
    loaded = load_model(path)
    assert loaded.xc == "b3lyp" and loaded.config == model.config and loaded.dtype == torch.float64
    assert loaded.basis.basis == "def2-svp" and loaded.basis.elements == model.basis.elements
    F0 = model.predict((HCNOF_Z, HCNOF_POS))
    assert np.array_equal(loaded.predict((HCNOF_Z, HCNOF_POS)), F0)

    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(tmp_path / "truncated.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ModelFileError, match="not a hamnet model"):
        load_model(tmp_path / "foreign.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    payload = model_payload(model)
    torch.save({**payload, "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(tmp_path / "future.pt")
    torch.save({**payload, "config": {**payload["config"], "future_knob": 1}}, tmp_path / "knob.pt")
    with pytest.raises(ModelFileError, match="cannot rebuild.*future_knob"):
        load_model(tmp_path / "knob.pt")


def test_hyperparameters_are_validated():
    with pytest.raises(ConfigError, match=r"unknown key 'model.num_layer'; allowed keys in model: backbone, "):
        build_model("sto-3g", ["H"], num_layer=3)
    with pytest.raises(ConfigError, match=r"model.cutoff must be > 0"):
        build_model("sto-3g", ["H"], cutoff=-1.0)
    with pytest.raises(ConfigError, match="model.tracegrad must be true or false, got 'yes'"):
        build_model("sto-3g", ["H"], tracegrad="yes")
    with pytest.raises(ConfigError, match="model.pet_dim is a hyperparameter of another backbone"):
        build_model("sto-3g", ["H"], pet_dim=7)
    assert build_model("sto-3g", ["H"], pet_dim=64).config == build_model("sto-3g", ["H"]).config  # legacy
    with pytest.raises(BasisError, match="unknown basis"):
        build_model("no-such-basis", ["H"])


def test_pair_cutoff_gives_exact_zero_blocks_and_stays_equivariant():
    """STO-3G (l <= 1 so L_max = 2, derived) with a pair cutoff shorter than H...H distances."""
    m = build_model("sto-3g", ["H", "C", "O"], dtype=torch.float64, pair_cutoff=1.6, tracegrad=True, **SMALL)
    assert m.lmax == 2 and m.irreps_node.lmax == 2
    Z = np.array([6, 8, 1, 1])
    pos = np.array([[0, 0, 0], [1.21, 0.02, 0], [-0.58, 0.94, 0.03], [-0.55, -0.93, -0.02]])
    F = m.predict((Z, pos))
    off = m.basis.layout(Z).atom_offsets
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    for i in range(4):
        for j in range(4):
            block = F[off[i] : off[i + 1], off[j] : off[j + 1]]
            assert (np.abs(block).max() == 0) == (i != j and d[i, j] >= 1.6), (i, j)
    assert_equivariant(_predict(m), m.basis, Z, pos, atol=1e-9)
    with torch.no_grad():
        out = m(molecule_graph(Z, pos))
    far = torch.from_numpy(d[OrbitalBasis.pair_index(4)] >= 1.6)
    assert not out[GK.OFFDIAG_TRACE_MASK][far].any() and out[GK.OFFDIAG_TRACE_MASK][~far].any()


def test_ao_permutation_matches_pyscf_order():
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    mol = gto.M(atom=list(zip("OHH", WATER_POS)), basis="def2-svp", unit="Angstrom")
    perm = [2, 0, 1]
    mol_p = gto.M(atom=[("OHH"[k], WATER_POS[k]) for k in perm], basis="def2-svp", unit="Angstrom")
    p = ao_permutation(basis, WATER_Z, perm)
    S, S_p = mol.intor("int1e_ovlp"), mol_p.intor("int1e_ovlp")
    assert np.abs(S_p - S[np.ix_(p, p)]).max() < 1e-14


def test_package_exports_build_and_load_lazily():
    import hamnet

    assert hamnet.build_model is build_model and hamnet.load_model is load_model
    assert hamnet.save_model is save_model
    with pytest.raises(AttributeError):
        hamnet.no_such_thing
