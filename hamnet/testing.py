"""Equivariance checks for any model of AO matrices (reusable by every architecture).

A model of a one-electron AO matrix ``F`` (Fock, Kohn-Sham, overlap) must satisfy, for
an orthogonal ``R`` (rotation or improper rotation), a translation ``t`` and an atom
permutation ``P``::

    F(R x + t) = D(R) F(x) D(R)^T         D = hamnet.basis.ao_rotation(mol, R)
    F(P x)     = F(x)[p][:, p]            p = AO order of the permuted molecule

:func:`equivariance_errors` measures all of these for a ``predict(Z, pos) -> (nao, nao)``
callable; :func:`assert_equivariant` turns them into a test. Run them in float64, where
an exact model reaches ~1e-12. :class:`BackboneTests` is a pytest mixin that gives every
backbone registered in :data:`hamnet.nn.config.BACKBONES` the shared model tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from hamnet.basis import OrbitalBasis, ao_rotation, wigner_D_e3nn
from hamnet.molecule import build_mole
from hamnet.symmetry.grids import random_rotation

__all__ = [
    "random_rotation",
    "irreps_rotation",
    "ao_permutation",
    "equivariance_errors",
    "assert_equivariant",
    "BackboneTests",
]

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (Z, pos Angstrom) -> (nao, nao)


def irreps_rotation(irreps, R) -> np.ndarray:
    """Float64-exact ``(dim, dim)`` representation of ``R`` on e3nn ``irreps``.

    For each irrep ``(l, p)``: ``wigner_D_e3nn(l, det(R) R)`` times ``p`` if ``R`` is
    improper, i.e. what ``irreps.D_from_matrix(R)`` gives, without its ~1e-7 error.
    Use it to test single modules (``f(D x) = D f(x)``) in float64.
    """
    from e3nn import o3

    R = np.asarray(R, dtype=np.float64)
    det = np.sign(np.linalg.det(R))
    blocks = []
    for mul, ir in o3.Irreps(irreps):
        d = wigner_D_e3nn(ir.l, det * R) * (ir.p if det < 0 else 1)
        blocks += [d] * mul
    dim = sum(b.shape[0] for b in blocks)
    D = np.zeros((dim, dim))
    k = 0
    for b in blocks:
        D[k : k + len(b), k : k + len(b)] = b
        k += len(b)
    return D


def ao_permutation(basis: OrbitalBasis, Z, perm) -> np.ndarray:
    """AO indices ``p`` with ``F(permuted molecule) = F[p][:, p]``.

    The permuted molecule has atoms ``Z[perm]`` (atom ``k`` of it is atom ``perm[k]``).
    """
    lay = basis.layout(Z)
    off = lay.atom_offsets
    return np.concatenate([np.arange(off[a], off[a + 1]) for a in np.asarray(perm)])


def equivariance_errors(
    predict: Predict,
    basis: OrbitalBasis,
    Z,
    pos,
    *,
    seed: int = 0,
    n_rotations: int = 2,
) -> dict:
    """Largest absolute deviation (Hartree) from exact equivariance, per transformation.

    Parameters
    ----------
    predict : callable
        ``predict(Z, pos) -> (nao, nao)`` array in PySCF AO order of ``basis``.
    basis : OrbitalBasis
    Z : (n,) int
    pos : (n, 3) float, Angstrom
    seed : int
        Seed of the random transformations.
    n_rotations : int
        Random proper rotations (and as many improper ones) to try.

    Returns
    -------
    dict
        Keys ``rotation``, ``improper``, ``inversion``, ``translation``, ``permutation``,
        ``combined`` (all at once) and ``scale`` (max |F|, to judge the others).
    """
    rng = np.random.default_rng(seed)
    Z = np.asarray(Z, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.float64)
    mol = build_mole(Z, pos, basis.basis)
    F0 = np.asarray(predict(Z, pos), dtype=np.float64)
    errors = {"scale": float(np.abs(F0).max())}

    def rotated(R: np.ndarray) -> float:
        D = ao_rotation(mol, R)
        return float(np.abs(predict(Z, pos @ R.T) - D @ F0 @ D.T).max())

    errors["rotation"] = max(rotated(random_rotation(rng)) for _ in range(n_rotations))
    errors["improper"] = max(rotated(random_rotation(rng, improper=True)) for _ in range(n_rotations))
    errors["inversion"] = rotated(-np.eye(3))
    t = rng.normal(scale=3.0, size=3)
    errors["translation"] = float(np.abs(predict(Z, pos + t) - F0).max())
    perm = rng.permutation(len(Z))
    p = ao_permutation(basis, Z, perm)
    errors["permutation"] = float(np.abs(predict(Z[perm], pos[perm]) - F0[np.ix_(p, p)]).max())
    R = random_rotation(rng, improper=bool(rng.integers(2)))
    D = ao_rotation(mol, R)[np.ix_(p, p)]
    expected = D @ F0[np.ix_(p, p)] @ D.T
    errors["combined"] = float(np.abs(predict(Z[perm], pos[perm] @ R.T + t) - expected).max())
    return errors


def assert_equivariant(
    predict: Predict,
    basis: OrbitalBasis,
    Z,
    pos,
    atol: float = 1e-9,
    min_scale: Optional[float] = 1e-3,
    **kwargs,
) -> dict:
    """Raise ``AssertionError`` unless every :func:`equivariance_errors` entry is <= ``atol``.

    ``min_scale`` guards against a vacuous pass: the prediction's largest entry must be
    at least that (Hartree). Returns the errors.
    """
    errors = equivariance_errors(predict, basis, Z, pos, **kwargs)
    if min_scale is not None and errors["scale"] < min_scale:
        raise AssertionError(f"prediction too small to test equivariance (max |F| = {errors['scale']:.2e})")
    bad = {k: v for k, v in errors.items() if k != "scale" and not v <= atol}
    if bad:
        raise AssertionError(f"equivariance errors above {atol:g} Hartree: {bad} (max |F| = {errors['scale']:.3g})")
    return errors


# ---- a test mixin for every backbone ---------------------------------------------------------

#: Carbamoyl fluoride H2N-C(=O)-F, slightly distorted (no symmetry), Angstrom: every
#: element of the default set but hydrogen twice, so blocks of all element pairs occur.
TEST_Z = np.array([6, 8, 9, 7, 1, 1])
TEST_POS = np.array([[0.000, 0.000, 0.000], [1.190, 0.150, 0.020], [-0.700, 1.120, -0.050],
                     [-0.680, -1.160, 0.030], [-1.690, -1.170, 0.100], [-0.180, -2.030, -0.060]])
TEST_WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]]))


class BackboneTests:
    """Shared tests of a backbone, nequip style: subclass in a test file and set ``config``.

    ``config`` holds ``backbone`` and small hyperparameters (``build_model`` keywords);
    ``basis``/``elements`` pick the layout. The subclass gets, in float64:

    * exact O(3) equivariance, translation and permutation invariance when the backbone
      is declared equivariant; permutation and translation alone otherwise;
    * a batch equals its molecules one by one, a lone atom included;
    * the outputs are exactly symmetric and in the model's dtype (float32 and float64);
    * save -> load gives the same predictions and the same hyperparameters.
    """

    config: dict = {}
    basis: str = "def2-svp"
    elements = ("H", "C", "N", "O", "F")
    atol: float = 1e-9  # Hartree, float64

    def _model(self, dtype=torch.float64):
        from hamnet.model import build_model

        torch.manual_seed(0)
        return build_model(self.basis, list(self.elements), dtype=dtype, xc="pbe", **self.config).eval()

    def _predict(self, model):
        return lambda Z, pos: model.predict((Z, pos))

    def test_symmetries(self):
        from hamnet.nn.config import BACKBONES

        model = self._model()
        assert model.equivariant == BACKBONES[model.backbone].equivariant  # as registered
        if model.equivariant:
            errors = assert_equivariant(self._predict(model), model.basis, TEST_Z, TEST_POS, atol=self.atol)
        else:
            errors = equivariance_errors(self._predict(model), model.basis, TEST_Z, TEST_POS)
            assert errors["rotation"] > 1e3 * self.atol, "a backbone declared non-equivariant looks equivariant"
            assert errors["translation"] <= self.atol and errors["permutation"] <= self.atol, errors
        assert errors["scale"] > 1e-3  # random weights give O(1) outputs: the test can fail

    def test_batch_equals_single(self):
        model = self._model()
        mols = [(TEST_Z, TEST_POS), TEST_WATER, (np.array([9]), np.zeros((1, 3)))]
        for (Z, pos), F in zip(mols, model.predict_batch(mols)):
            single = model.predict((Z, pos))
            assert single.shape == F.shape == (model.basis.layout(Z).nao,) * 2
            assert np.abs(single - F).max() < 1e-12
        assert np.abs(F).max() > 1e-3  # a lone atom (no edges, no pairs) still gets a block

    def test_dtype_and_exact_symmetry(self):
        from hamnet import graph_keys as GK
        from hamnet.graph import molecule_graph

        for dtype in (torch.float32, torch.float64):
            model = self._model(dtype)
            with torch.no_grad():
                out = model(molecule_graph(*TEST_WATER))
            assert out[GK.DIAG].dtype == dtype and out[GK.OFFDIAG].dtype == dtype
            F = model.predict(TEST_WATER)
            assert F.dtype == np.float64 and np.array_equal(F, F.T)

    def test_save_load_roundtrip(self):
        from hamnet.model import load_model, save_model

        model = self._model()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt"
            save_model(model, path)
            again = load_model(path)
        assert again.config == model.config and again.backbone == model.backbone and again.xc == "pbe"
        assert np.array_equal(again.predict((TEST_Z, TEST_POS)), model.predict((TEST_Z, TEST_POS)))


# ---- tiny data and configs shared by the test suite --------------------------------------------

#: Water near its equilibrium geometry, Angstrom (the one copy the tests use).
WATER_Z = np.array([8, 1, 1])
WATER_POS = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
#: Hyperparameters of a TraceGrad model that trains for a few steps in seconds.
TINY_MODEL = {"tracegrad": True, "num_channels": 4, "num_layers": 1, "radial_hidden": 8, "num_radial": 4, "num_pair_radial": 4,
              "tracegrad_channels": 2, "tracegrad_hidden": 8, "tracegrad_depth": 1, "tracegrad_dim": 4}


def water_records(n: int, basis: str = "sto-3g", seed: int = 0, overlap: bool = True):
    """``n`` distorted waters labeled with PySCF RHF (F = mf.get_fock() at convergence)."""
    from pyscf import scf

    from hamnet.data import record_keys as RK

    rng = np.random.default_rng(seed)
    for k in range(n):
        pos = WATER_POS + rng.normal(scale=0.04, size=WATER_POS.shape)
        mf = scf.RHF(build_mole(WATER_Z, pos, basis))
        mf.conv_tol = 1e-10
        mf.kernel()
        rec = {RK.Z: WATER_Z.copy(), RK.POS: pos, RK.F: mf.get_fock(), RK.ENERGY: mf.e_tot,
               RK.MO_ENERGY: mf.mo_energy, RK.NOCC: 5, RK.SOURCE_ID: f"water-{k}"}
        if overlap:
            rec[RK.S] = mf.get_ovlp()
        yield rec


def make_store(path, n: int = 10, basis: str = "sto-3g", xc: str = "hf", overlap: bool = True, seed: int = 0):
    """A store of ``n`` waters with split 'tiny': n-4 train, 2 val, 2 test."""
    from hamnet.data import write_dataset

    splits = {"tiny": {"train": list(range(n - 4)), "val": [n - 4, n - 3], "test": [n - 2, n - 1]}}
    return write_dataset(path, water_records(n, basis, seed, overlap),
                         {"recipe": "test-water", "xc": xc, "basis": basis, "splits": splits})


def tiny_config(store, **overrides) -> dict:
    """A run config of a few steps on ``store``; ``overrides`` merge into its sections
    (a ``model`` section of another backbone replaces the tiny TraceGrad one)."""
    cfg = {
        "data": {"path": str(store)},
        "model": dict(TINY_MODEL),
        "optim": {"batch_size": 2, "lr": 0.003},
        "schedule": {"warmup_steps": 2},
        "limits": {"max_steps": 4, "max_minutes": None},
        "eval": {"every_steps": 2},
    }
    for key, value in overrides.items():
        other_backbone = key == "model" and isinstance(value, dict) and value.get("backbone", "so2") not in ("so2", "equivariant")
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and not other_backbone:
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def drop_records(path, slots) -> None:
    """Make a finished store look like an interrupted make: delete the records ``slots``
    and mark the metadata incomplete, in one transaction (tests of resuming)."""
    import json

    from hamnet.data import keys as K
    from hamnet.data.store import META_KEY, REC_PREFIX, Store, slot_key

    store = Store(path, write=True)
    try:
        meta = json.loads(store.get(META_KEY))
        meta[K.META_COMPLETE] = False
        store.put_many([(META_KEY, json.dumps(meta).encode())],
                       delete=[slot_key(REC_PREFIX, s) for s in slots])
    finally:
        store.close()
