"""Symmetry toolkit: rotation grids, equivariance error, test-time averaging, the
unconstrained PET backbone and rotational augmentation in training.

All model checks run in float64 on tiny models and small molecules (water, methanol).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pyscf import gto, scf

from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis, ao_rotation, wigner_D_pyscf
from hamnet.graph import collate, molecule_graph
from hamnet.model import build_model, save_model
from hamnet.nn.base import ModelBase
from hamnet.nn.config import ConfigError
from hamnet.symmetry import (
    RotationAveraged,
    equivariance_error,
    format_report,
    random_rotations,
    rotate_batch,
    rotation_grid,
)
from hamnet.molecule import build_mole
from hamnet.testing import WATER_POS, WATER_Z, random_rotation

WATER = (WATER_Z, WATER_POS)
METHANOL = (
    np.array([6, 8, 1, 1, 1, 1]),
    np.array([[-0.047, 0.665, 0.0], [-0.047, -0.756, 0.0], [-1.09, 0.94, 0.0], [0.45, 1.07, 0.89],
              [0.45, 1.07, -0.89], [0.87, -1.06, 0.0]]),
)
MOLS = [WATER, METHANOL]
TINY_EQ = dict(num_channels=4, num_layers=1, radial_hidden=8, num_radial=4, num_pair_radial=4,
               tracegrad_channels=2, tracegrad_hidden=8, tracegrad_depth=1, tracegrad_dim=4)
TINY_PET = dict(backbone="pet", num_layers=2, pet_dim=16, pet_heads=2, pet_ff=32, pet_pair_hidden=32)


@pytest.fixture(scope="module")
def eq_model():
    torch.manual_seed(0)
    return build_model("def2-svp", ["H", "C", "O"], dtype=torch.float64, **TINY_EQ)


@pytest.fixture(scope="module")
def pet_model():
    torch.manual_seed(0)
    return build_model("def2-svp", ["H", "C", "O"], dtype=torch.float64, **TINY_PET)


# ---- rotation grids ---------------------------------------------------------------------------


@pytest.mark.parametrize("order,inversion", [(3, False), (5, False), (7, True)])
def test_grid_averages_wigner_matrices_to_zero_up_to_its_degree(order, inversion):
    grid = rotation_grid(order, inversion=inversion)
    assert len(grid) == len(grid.weights) and abs(grid.weights.sum() - 1) < 1e-14 and (grid.weights > 0).all()
    assert np.allclose(grid.rotations @ grid.rotations.transpose(0, 2, 1), np.eye(3), atol=1e-13)
    for l in range(1, grid.exact_degree + 1):
        avg = np.einsum("g,gab->ab", grid.weights, np.stack([wigner_D_pyscf(l, R) for R in grid.rotations]))
        assert np.abs(avg).max() < 1e-12, l
    # one degree beyond the rule the average is not zero (the check above can fail)
    l = grid.exact_degree + 1 if not inversion or (grid.exact_degree + 1) % 2 == 0 else grid.exact_degree + 2
    avg = np.einsum("g,gab->ab", grid.weights, np.stack([wigner_D_pyscf(l, R) for R in grid.rotations]))
    assert np.abs(avg).max() > 1e-3


def test_grid_with_inversion_kills_odd_parity():
    grid = rotation_grid(3, n_inplane=1, inversion=True)  # few in-plane angles: only parity is exact
    avg = np.einsum("g,gab->ab", grid.weights, np.stack([wigner_D_pyscf(1, R) for R in grid.rotations]))
    assert np.abs(avg).max() < 1e-14
    assert len(grid) == 2 * 6


def test_grid_bad_orders_are_named():
    with pytest.raises(ValueError, match="no Lebedev rule of order 4"):
        rotation_grid(4)
    with pytest.raises(ValueError, match="n_inplane"):
        rotation_grid(3, n_inplane=0)


def test_random_rotations_are_proper_and_reproducible():
    torch.manual_seed(3)
    a = random_rotations(5)
    torch.manual_seed(3)
    b = random_rotations(5)
    assert torch.equal(a, b)
    assert torch.allclose(torch.linalg.det(a), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(a @ a.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3), atol=1e-12)


# ---- AO rotations of the padded layout ------------------------------------------------------


@pytest.mark.parametrize("improper", [False, True])
def test_basis_ao_rotation_equals_the_mole_one(improper):
    basis = OrbitalBasis("def2-svp", ["H", "C", "O"])
    Z, pos = METHANOL
    R = random_rotation(np.random.default_rng(1), improper)
    assert np.abs(basis.ao_rotation(Z, R) - ao_rotation(build_mole(Z, pos, basis.basis), R)).max() < 1e-14


def test_rotate_batch_gives_the_pyscf_fock_matrix_of_the_rotated_molecule():
    """Augmentation is physics: D F(x) D^T must be PySCF's F of the rotated water."""
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    Z, pos = WATER
    R = random_rotation(np.random.default_rng(7))

    def fock(p):
        mol = gto.M(atom=list(zip(Z.tolist(), p)), basis="def2-svp", unit="Angstrom", verbose=0)
        mf = scf.RHF(mol)
        mf.conv_tol, mf.conv_tol_grad = 1e-12, 1e-8
        mf.kernel()
        return mf.get_fock()

    g = molecule_graph(Z, pos, basis=basis, fock=fock(pos), elements=basis.elements, dtype=torch.float64)
    rotated = rotate_batch(collate([g]), basis, torch.from_numpy(R)[None])
    ref = collate([molecule_graph(Z, pos @ R.T, basis=basis, fock=fock(pos @ R.T), elements=basis.elements,
                                  dtype=torch.float64)])
    assert torch.allclose(rotated[GK.POS], ref[GK.POS], atol=1e-12)
    for key in (GK.TARGET_DIAG, GK.TARGET_OFFDIAG):
        assert (rotated[key] - ref[key]).abs().max() < 1e-6  # SCF convergence, not the rotation, limits this
        assert (rotated[key] - collate([g])[key]).abs().max() > 1e-2  # the blocks did change


def test_rotate_batch_checks_its_rotations():
    basis = OrbitalBasis("sto-3g", ["H", "O"])
    g = collate([molecule_graph(*WATER, elements=basis.elements)] * 2)
    with pytest.raises(ValueError, match="one 3x3 rotation per molecule"):
        rotate_batch(g, basis, torch.eye(3)[None])


# ---- equivariance error -----------------------------------------------------------------------


class ConstantModel(ModelBase):
    """Predicts the same blocks whatever the geometry: an invariant, not an equivariant, model."""

    def __init__(self, basis, seed=0):
        super().__init__(basis, None, None)
        rng = np.random.default_rng(seed)
        b = rng.normal(size=(basis.n_pad, basis.n_pad))
        self.block = torch.nn.Parameter(torch.from_numpy(b + b.T), requires_grad=False)
        self.masks = {(a, c): torch.from_numpy(basis.block_mask(a, c)) for a in basis.elements for c in basis.elements}

    def forward(self, batch):
        Z, (i, j) = batch[GK.Z].tolist(), batch[GK.PAIR_INDEX]
        dm = torch.stack([self.masks[(z, z)] for z in Z])
        om = torch.stack([self.masks[(Z[a], Z[b])] for a, b in zip(i.tolist(), j.tolist())])
        return {GK.DIAG: self.block * dm, GK.OFFDIAG: self.block * om, GK.DIAG_MASK: dm, GK.OFFDIAG_MASK: om}


def test_equivariance_error_matches_a_hand_computation():
    basis = OrbitalBasis("def2-svp", ["H", "O"])
    model = ConstantModel(basis)
    Z, pos = WATER
    F = model.predict(WATER)
    rep = equivariance_error(model, [WATER], n_rotations=3, seed=5, observables=True)
    rng = np.random.default_rng(5)
    errs, eps = [], []
    S = build_mole(Z, pos, basis.basis).intor("int1e_ovlp")
    import scipy.linalg

    e0 = scipy.linalg.eigh(F, S, eigvals_only=True)[:5]
    for _ in range(3):
        D = basis.ao_rotation(Z, random_rotation(rng))
        Fr = D.T @ F @ D  # H(Rx) = F for this model
        errs.append(np.abs(Fr - F))
        eps.append(np.abs(scipy.linalg.eigh(Fr, S, eigvals_only=True)[:5] - e0))
    errs, eps = np.stack(errs), np.stack(eps)
    assert rep["mean_uHa"] == pytest.approx(errs.mean() * 1e6, rel=1e-10)
    assert rep["max_uHa"] == pytest.approx(errs.max() * 1e6, rel=1e-10)
    assert rep["eps_occ"]["mean_uHa"] == pytest.approx(eps.mean() * 1e6, rel=1e-8)
    nonzero_s = [name for name, r in rep["by_block"].items() if r["max_uHa"] > 1e-6]
    assert "s-s" not in nonzero_s and "p-p" in nonzero_s  # s-s blocks are invariant, p-p are not
    assert rep["n_molecules"] == 1 and rep["n_rotations"] == 3
    assert "s-s blocks" in format_report(rep)


def test_equivariant_model_has_error_below_1e9_hartree(eq_model):
    rep = equivariance_error(eq_model, MOLS, n_rotations=3, inversion=True)
    assert rep["max_uHa"] < 1e-3, format_report(rep)  # 1e-3 uHa = 1e-9 Ha
    assert rep["eps_occ"]["max_uHa"] < 1e-3


def test_unconstrained_model_error_is_large_and_averaging_removes_it(pet_model):
    raw = equivariance_error(pet_model, MOLS, n_rotations=3, observables=False)
    assert raw["mean_uHa"] > 100.0, format_report(raw)  # random weights: tens of mHa
    errors = []
    for order in (3, 7):
        avg = RotationAveraged(pet_model, order)
        errors.append(equivariance_error(avg, MOLS, n_rotations=3, observables=False)["mean_uHa"])
    assert errors[1] < errors[0] < raw["mean_uHa"]  # the residual falls as the grid grows
    assert errors[1] < raw["mean_uHa"] / 10


def test_averaging_leaves_an_equivariant_model_unchanged(eq_model):
    avg = RotationAveraged(eq_model, 3, inversion=True)
    for mol in MOLS:
        assert np.abs(avg.predict(mol) - eq_model.predict(mol)).max() < 1e-9
    assert avg.spread(MOLS)["max_uHa"] < 1e-3


def test_averaged_model_spread_and_api(pet_model):
    avg = RotationAveraged(pet_model, 3, max_atoms=20)  # several chunks of the grid
    assert avg.n_rotations == 24 and avg.basis is pet_model.basis and avg.dtype == torch.float64
    whole = RotationAveraged(pet_model, 3)
    F1, F2 = avg.predict(METHANOL), whole.predict(METHANOL)
    assert np.abs(F1 - F2).max() < 1e-12 and np.abs(F1 - F1.T).max() == 0
    # the average equals the mean of explicitly back-rotated predictions
    Z, pos = METHANOL
    manual = sum(w * pet_model.basis.ao_rotation(Z, R).T @ pet_model.predict((Z, pos @ R.T))
                 @ pet_model.basis.ao_rotation(Z, R) for R, w in zip(avg.grid.rotations, avg.grid.weights))
    assert np.abs(F1 - manual).max() < 1e-10
    assert avg.spread([METHANOL])["mean_uHa"] > 100.0


# ---- the PET backbone ---------------------------------------------------------------------------


def test_pet_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="backbone.*equivariant, pet"):
        build_model("sto-3g", ["H"], backbone="transformer")
    with pytest.raises(ConfigError, match="tracegrad.*needs backbone 'equivariant'"):
        build_model("sto-3g", ["H"], backbone="pet", tracegrad=True)
    with pytest.raises(ConfigError, match="pet_heads"):
        build_model("sto-3g", ["H"], backbone="pet", pet_dim=10, pet_heads=4)


# ---- training with rotational augmentation -----------------------------------------------------


def test_pet_trains_with_augmentation_and_resumes_exactly(tmp_path):
    from hamnet.testing import make_store, tiny_config

    from hamnet.train.loop import run

    store = make_store(tmp_path / "water", n=8)
    model = {"backbone": "pet", "num_layers": 1, "pet_dim": 8, "pet_heads": 2, "pet_ff": 16, "pet_pair_hidden": 16}
    sched = {"kind": "constant"}
    cfg = tiny_config(store, model=model, limits={"max_steps": 6}, eval={"every_steps": 3}, schedule=sched)
    whole = run(cfg, tmp_path / "whole", progress=False, evaluate_test=False)
    log = (tmp_path / "whole" / "train.log").read_text()
    assert "backbone pet" in log and "rotation augmentation=True" in log
    run(tiny_config(store, model=model, limits={"max_steps": 3}, eval={"every_steps": 3}, schedule=sched),
        tmp_path / "split", progress=False, evaluate_test=False)
    resumed = run(cfg, tmp_path / "split", progress=False, evaluate_test=False)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)
    # the augmentation draws rotations: without it the weights differ
    off = run(tiny_config(store, model=model, limits={"max_steps": 6}, eval={"every_steps": 3}, schedule=sched,
                          augment={"rotations": False}), tmp_path / "off", progress=False, evaluate_test=False)
    c = off.model.state_dict()
    assert any(not torch.allclose(a[k], c[k]) for k in a)


def test_augment_config_is_checked():
    from hamnet.train.config import ConfigError as TrainConfigError
    from hamnet.train.config import load_config

    with pytest.raises(TrainConfigError, match="augment.inversion needs rotations"):
        load_config({"data": {"recipe": "md17-water", "n": 10}, "augment": {"rotations": False, "inversion": True}})
    with pytest.raises(TrainConfigError, match="augment.rotations"):
        load_config({"data": {"recipe": "md17-water", "n": 10}, "augment": {"rotations": "yes"}})


def test_eval_cli_reports_symmetry(tmp_path, capsys):
    from hamnet.testing import make_store, tiny_config

    from hamnet.cli import main
    from hamnet.train.loop import run

    store = make_store(tmp_path / "water", n=6)
    model = {"backbone": "pet", "num_layers": 1, "pet_dim": 8, "pet_heads": 2, "pet_ff": 16, "pet_pair_hidden": 16}
    run(tiny_config(store, model=model, limits={"max_steps": 2}), tmp_path / "run", progress=False,
        evaluate_test=False)
    rc = main(["eval", str(tmp_path / "run"), "--symmetry", "--rotations", "2", "--symmetry-molecules", "2",
               "--average", "3", "--no-progress", "--out", str(tmp_path / "e.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "equivariance error (2 molecules x 2 rotations" in text and "grid spread" in text
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["average"]["n_rotations"] == 24 and doc["symmetry"]["by_block"]["s-s"]["n"] > 0
    assert main(["eval", str(tmp_path / "run"), "--average", "4", "--no-progress"]) == 2
    assert "no Lebedev rule of order 4" in capsys.readouterr().err


def test_wrapper_is_not_saved_and_pet_handles_isolated_atoms(pet_model, tmp_path):
    with pytest.raises(TypeError, match="save the wrapped model"):
        save_model(RotationAveraged(pet_model, 3), tmp_path / "avg.pt")
    assert pet_model.predict((np.array([8]), np.zeros((1, 3)))).shape == (14, 14)  # no neighbours, no pairs
    far = pet_model.predict((np.array([1, 1]), np.array([[0.0, 0, 0], [9.0, 0, 0]])))  # beyond the cutoff
    assert far.shape == (10, 10) and np.isfinite(far).all()


def test_eval_symmetry_needs_a_model(tmp_path, capsys):
    from hamnet.cli import main

    rc = main(["eval", "--predictions", str(tmp_path / "p.npz"), "--data", str(tmp_path), "--symmetry"])
    assert rc == 2 and "--symmetry and --average need a model" in capsys.readouterr().err
