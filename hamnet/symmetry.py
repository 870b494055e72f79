"""Rotational symmetry of Hamiltonian models: measure it, learn it, restore it.

Three questions from hamnet's source papers (PET/ECSE, "probing broken symmetries",
unconstrained MLIPs at scale) about what exact rotational symmetry buys and costs:

* **How equivariant is a model?** :func:`equivariance_error` rotates each molecule by
  random rotations ``R``, rotates the prediction back, ``D(R)^T H(R x) D(R)``, and reports
  its deviation from ``H(x)`` in micro-Hartree -- overall, on-site/off-site and per
  angular-momentum block type (``s-s``, ``s-p``, ...) -- and what it does to an
  observable, the occupied orbital energies. ``D`` is the AO rotation of
  :mod:`hamnet.basis` (verified against PySCF's integrals).
* **Learning symmetry from data:** :func:`rotate_batch` / :func:`random_rotations` rotate
  a training batch, inputs and target blocks (``F -> D F D^T``), which the training loop
  applies at every step when ``augment.rotations`` is on (the default for the
  unconstrained ``backbone: pet``).
* **Restoring it at test time:** :class:`RotationAveraged` wraps any model and
  predicts ``sum_g w_g D(g)^T H(g x) D(g)`` over a rotation quadrature
  (:func:`rotation_grid`: a Lebedev grid for the rotated z-axis times evenly spaced
  in-plane angles, optionally times inversion). The grid average of a Wigner matrix
  ``D^l`` is exactly zero for ``1 <= l <= min(order, n_inplane - 1)``, so the average
  removes every non-equivariant component of the output up to that degree; an
  equivariant model is left unchanged.

All rotations act on positions as ``x -> R x`` about the origin; the models are
translation invariant, so the centre does not matter.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Optional, Sequence

import numpy as np
import scipy.linalg
import torch

from hamnet import keys as K
from hamnet.basis import OrbitalBasis
from hamnet.graph import collate, to_device
from hamnet.nn.base import ModelBase
from hamnet.testing import molecule_mole, random_rotation

__all__ = [
    "LEBEDEV_ORDERS",
    "RotationGrid",
    "rotation_grid",
    "random_rotations",
    "padded_rotations",
    "rotate_batch",
    "RotationAveraged",
    "equivariance_error",
    "format_report",
    "SPREAD_DIAG",
    "SPREAD_OFFDIAG",
]

#: Degrees of the Lebedev rules SciPy provides (``scipy.integrate.lebedev_rule``).
LEBEDEV_ORDERS = (3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 35, 41, 47, 53, 59, 65, 71, 77,
                  83, 89, 95, 101, 107, 113, 119, 125, 131)

SPREAD_DIAG = "diag_spread"  # (n_atoms, n_pad, n_pad) weighted std over the grid, Hartree
SPREAD_OFFDIAG = "offdiag_spread"  # (n_pairs, n_pad, n_pad) same for off-diagonal blocks
_LNAMES = "spdfghik"
MAX_ATOMS = 4096  # atoms per forward pass when rotated copies of a batch are stacked


# ---- rotation grids -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RotationGrid:
    """A rotation quadrature: ``rotations`` ``(N, 3, 3)`` float64 and ``weights`` ``(N,)``
    (positive, summing to 1)."""

    rotations: np.ndarray
    weights: np.ndarray
    order: int
    n_inplane: int
    inversion: bool

    def __len__(self) -> int:
        return len(self.weights)

    @property
    def exact_degree(self) -> int:
        """Highest ``l`` up to which the grid average of every ``D^l`` (``l >= 1``) is exactly 0."""
        return min(self.order, self.n_inplane - 1)


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _ry(b: np.ndarray) -> np.ndarray:
    c, s = np.cos(b), np.sin(b)
    z, o = np.zeros_like(b), np.ones_like(b)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rotation_grid(order: int, n_inplane: Optional[int] = None, inversion: bool = False) -> RotationGrid:
    """Quadrature on SO(3) (or O(3) with ``inversion``): Lebedev x in-plane angles.

    Rotation ``R = Rz(alpha) Ry(beta) Rz(gamma)`` where ``(beta, alpha)`` are the polar
    angles of a Lebedev point of degree ``order`` and ``gamma`` runs over ``n_inplane``
    evenly spaced angles; weight = Lebedev weight / (4 pi n_inplane). With
    ``inversion`` every rotation also appears times ``-1`` (half the weight each).

    Parameters
    ----------
    order : int
        Lebedev degree, one of :data:`LEBEDEV_ORDERS`.
    n_inplane : int, optional
        In-plane angles (default ``order + 1``, which makes the grid exact to degree ``order``).
    inversion : bool
        Include improper rotations (average over O(3) instead of SO(3)).
    """
    from scipy.integrate import lebedev_rule

    if order not in LEBEDEV_ORDERS:
        raise ValueError(f"no Lebedev rule of order {order!r}; available orders: {LEBEDEV_ORDERS}")
    n_inplane = order + 1 if n_inplane is None else n_inplane
    if not isinstance(n_inplane, (int, np.integer)) or isinstance(n_inplane, bool) or n_inplane < 1:
        raise ValueError(f"n_inplane must be an integer >= 1, got {n_inplane!r}")
    x, w = lebedev_rule(order)  # (3, n), sum 4 pi
    alpha = np.arctan2(x[1], x[0])
    beta = np.arccos(np.clip(x[2], -1.0, 1.0))
    gamma = 2.0 * np.pi * np.arange(n_inplane) / n_inplane
    align = _rz(alpha) @ _ry(beta)  # (n, 3, 3): z -> Lebedev point
    R = (align[:, None] @ _rz(gamma)[None]).reshape(-1, 3, 3)
    weights = np.repeat(w / w.sum(), n_inplane) / n_inplane
    if inversion:
        R = np.concatenate([R, -R])
        weights = np.concatenate([weights, weights]) / 2.0
    return RotationGrid(R, weights, int(order), int(n_inplane), bool(inversion))


def random_rotations(n: int, improper: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(n, 3, 3)`` float64 Haar-random rotations from torch's RNG (so a resumed
    training run draws the same ones); with ``improper`` each is also inverted with
    probability 1/2."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[:, :, 0] *= torch.sign(torch.linalg.det(q))[:, None]  # det +1
    if improper:
        flip = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
        q = q * flip.to(q.dtype)[:, None, None]
    return q


def padded_rotations(basis: OrbitalBasis, rotations) -> torch.Tensor:
    """``(N, n_pad, n_pad)`` float64 padded-layout rotations (:meth:`OrbitalBasis.padded_rotation`)."""
    rot = np.asarray(torch.as_tensor(rotations, dtype=torch.float64).cpu())
    return torch.from_numpy(np.stack([basis.padded_rotation(R) for R in rot]))


def _rotate_blocks(D: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """``D_k B_k D_k^T`` for matching leading dims."""
    return D @ blocks @ D.transpose(-1, -2)


def rotate_batch(batch: dict, basis: OrbitalBasis, rotations) -> dict:
    """A copy of ``batch`` with molecule ``m`` rotated by ``rotations[m]`` (``(n_mol, 3, 3)``).

    Positions go to ``R x``; target blocks, if present, to ``D B D^T`` with ``D`` the
    padded rotation of ``R`` -- exactly the data of the rotated molecule, because
    ``F(R x) = D F(x) D^T`` for a Fock matrix (tested against PySCF in test_basis).
    """
    R = torch.as_tensor(rotations, dtype=torch.float64)
    n_mol = len(batch[K.PTR]) - 1
    if R.shape != (n_mol, 3, 3):
        raise ValueError(f"rotate_batch needs one 3x3 rotation per molecule ({n_mol}), got {tuple(R.shape)}")
    out = dict(batch)
    mol_of_atom = batch[K.BATCH].cpu()
    pos = batch[K.POS]
    Ra = R[mol_of_atom].to(device=pos.device, dtype=pos.dtype)  # [n_atoms, 3, 3]
    out[K.POS] = (Ra @ pos.unsqueeze(-1)).squeeze(-1)
    if K.TARGET_DIAG in batch or K.TARGET_OFFDIAG in batch:
        D = padded_rotations(basis, R)  # [n_mol, n_pad, n_pad]
        mol_of_pair = mol_of_atom[batch[K.PAIR_INDEX][0].cpu()]
        for key, mol in ((K.TARGET_DIAG, mol_of_atom), (K.TARGET_OFFDIAG, mol_of_pair)):
            if key in batch:
                t = batch[key]
                out[key] = _rotate_blocks(D[mol].to(device=t.device, dtype=t.dtype), t)
    return out


def _replicate(batch: dict, positions: Sequence[torch.Tensor]) -> dict:
    """``len(positions)`` copies of an input batch, copy ``k`` with positions ``positions[k]``."""
    k = len(positions)
    n_atoms, n_pairs, n_mol = len(batch[K.Z]), batch[K.PAIR_INDEX].shape[1], len(batch[K.PTR]) - 1
    ar = torch.arange(k, device=batch[K.Z].device)
    return {
        K.Z: batch[K.Z].repeat(k),
        K.POS: torch.cat(list(positions)),
        K.BATCH: (batch[K.BATCH][None] + n_mol * ar[:, None]).reshape(-1),
        K.PTR: torch.cat([batch[K.PTR][:1], (batch[K.PTR][1:][None] + n_atoms * ar[:, None]).reshape(-1)]),
        K.PAIR_PTR: torch.cat(
            [batch[K.PAIR_PTR][:1], (batch[K.PAIR_PTR][1:][None] + n_pairs * ar[:, None]).reshape(-1)]
        ),
        K.PAIR_INDEX: (batch[K.PAIR_INDEX][:, None] + n_atoms * ar[None, :, None]).reshape(2, -1),
        K.PAIR_REVERSE: (batch[K.PAIR_REVERSE][None] + n_pairs * ar[:, None]).reshape(-1),
    }


def _back_rotated(model, batch: dict, rotations: np.ndarray, D: torch.Tensor):
    """Blocks of ``model`` on copies of ``batch`` rotated by ``rotations`` (``(k, 3, 3)``),
    rotated back: ``D^T B(R x) D``. Returns (diag ``(k, n_atoms, ...)``, offdiag ``(k, n_pairs, ...)``, out)."""
    pos = batch[K.POS].to(model.dtype)
    Rt = torch.as_tensor(rotations, dtype=pos.dtype, device=pos.device)
    rep = _replicate(batch, [pos @ R.T for R in Rt])
    out = model(rep)
    k = len(rotations)
    Dk = D.to(device=pos.device, dtype=out[K.DIAG].dtype)[:, None]  # [k, 1, n_pad, n_pad]
    n_pad = out[K.DIAG].shape[-1]
    diag = out[K.DIAG].reshape(k, -1, n_pad, n_pad)
    off = out[K.OFFDIAG].reshape(k, -1, n_pad, n_pad)
    DkT = Dk.transpose(-1, -2)
    return DkT @ diag @ Dk, DkT @ off @ Dk, out


# ---- test-time averaging --------------------------------------------------------------------


class RotationAveraged(ModelBase):
    """``model`` averaged over a rotation grid: ``H(x) = sum_g w_g D(g)^T H_model(g x) D(g)``.

    Behaves like a model (``predict``, ``predict_batch``, ``assemble``, and
    ``forward(batch)`` with the same output keys), so it can stand in for one in
    :func:`hamnet.scf.predict_guess`, :func:`hamnet.train.evaluate.predict_records` or
    :func:`equivariance_error`. The forward output also carries :data:`SPREAD_DIAG` and
    :data:`SPREAD_OFFDIAG`: the weighted standard deviation of the back-rotated blocks
    over the grid (Hartree), a diagnostic of how far the model is from equivariance.

    Parameters
    ----------
    model : ModelBase
        Any hamnet model (equivariant or not); its weights are shared, not copied.
    order, n_inplane, inversion
        The grid, see :func:`rotation_grid`.
    max_atoms : int
        Rotated copies are batched; each forward pass holds at most this many atoms
        (at least one copy of the batch).
    """

    def __init__(self, model: ModelBase, order: int = 5, n_inplane: Optional[int] = None,
                 inversion: bool = False, max_atoms: int = MAX_ATOMS):
        super().__init__(model.basis, model.cfg, model.xc)
        self.model = model
        self.grid = rotation_grid(order, n_inplane, inversion)
        self.max_atoms = int(max_atoms)
        self.equivariant = model.equivariant
        self.register_buffer("_D", padded_rotations(model.basis, self.grid.rotations), persistent=False)

    @property
    def n_rotations(self) -> int:
        return len(self.grid)

    def forward(self, batch: dict) -> dict:
        n_atoms = len(batch[K.Z])
        chunk = max(1, self.max_atoms // max(n_atoms, 1))
        w_all = torch.as_tensor(self.grid.weights, dtype=torch.float64, device=batch[K.POS].device)
        sums = None  # weighted sums of (B - c) and (B - c)^2, c = the first grid point's blocks
        out0 = None
        for start in range(0, len(self.grid), chunk):
            sl = slice(start, start + chunk)
            diag, off, out = _back_rotated(self.model, batch, self.grid.rotations[sl], self._D[sl])
            diag, off = diag.to(torch.float64), off.to(torch.float64)
            if out0 is None:  # the shift keeps the variance free of cancellation
                c_d, c_o = diag[0].clone(), off[0].clone()
                out0 = {K.DIAG_MASK: out[K.DIAG_MASK][:n_atoms], K.OFFDIAG_MASK: out[K.OFFDIAG_MASK][: off.shape[1]]}
            w = w_all[sl][:, None, None, None]
            xd, xo = diag - c_d, off - c_o
            terms = [(w * xd).sum(0), (w * xd * xd).sum(0), (w * xo).sum(0), (w * xo * xo).sum(0)]
            sums = terms if sums is None else [a + b for a, b in zip(sums, terms)]
        dt = self.dtype
        m_d, v_d, m_o, v_o = sums
        diag, off = c_d + m_d, c_o + m_o
        diag = 0.5 * (diag + diag.transpose(-1, -2))  # exact symmetry (rotating back rounds differently)
        off = 0.5 * (off + off[batch[K.PAIR_REVERSE]].transpose(-1, -2))
        out0[K.DIAG] = diag.to(dt)
        out0[K.OFFDIAG] = off.to(dt)
        out0[SPREAD_DIAG] = (v_d - m_d**2).clamp_min(0).sqrt().to(dt)
        out0[SPREAD_OFFDIAG] = (v_o - m_o**2).clamp_min(0).sqrt().to(dt)
        return out0

    def spread(self, molecules: Iterable) -> dict:
        """Mean and max of the grid spread (weighted std of the back-rotated entries, over
        the entries that exist), micro-Hartree, for molecules as accepted by ``predict``."""
        batch = collate([self._graph(m) for m in molecules])
        with torch.no_grad():
            out = self(to_device(batch, self.device))
        vals = torch.cat([out[SPREAD_DIAG][out[K.DIAG_MASK]], out[SPREAD_OFFDIAG][out[K.OFFDIAG_MASK]]])
        return {"mean_uHa": float(vals.mean()) * 1e6, "max_uHa": float(vals.max()) * 1e6}


# ---- equivariance error ---------------------------------------------------------------------


def _block_labels(basis: OrbitalBasis) -> tuple[np.ndarray, list]:
    """``(n_pad, n_pad)`` index of the angular-momentum pair of each padded entry, and names."""
    l_of = np.repeat(np.asarray(basis.pad_ls), [2 * l + 1 for l in basis.pad_ls])
    lo, hi = np.minimum.outer(l_of, l_of), np.maximum.outer(l_of, l_of)
    pairs = sorted({(int(a), int(b)) for a, b in zip(lo.ravel(), hi.ravel())})
    index = {p: k for k, p in enumerate(pairs)}
    lab = np.vectorize(lambda a, b: index[(int(a), int(b))])(lo, hi)
    return lab, [f"{_LNAMES[a]}-{_LNAMES[b]}" for a, b in pairs]


class _Stats:
    def __init__(self):
        self.sum, self.sq, self.n, self.max = 0.0, 0.0, 0, 0.0

    def add(self, err: torch.Tensor) -> None:
        if err.numel():
            a = err.abs()
            self.sum += float(a.sum())
            self.sq += float((a * a).sum())
            self.n += int(a.numel())
            self.max = max(self.max, float(a.max()))

    def report(self, scale: float = 1e6) -> dict:
        if not self.n:
            return {"mean_uHa": float("nan"), "max_uHa": float("nan"), "rms_uHa": float("nan"), "n": 0}
        return {"mean_uHa": self.sum / self.n * scale, "max_uHa": self.max * scale,
                "rms_uHa": (self.sq / self.n) ** 0.5 * scale, "n": self.n}


def _occupied_energies(F_list, S: np.ndarray, n_occ: int) -> np.ndarray:
    """``(len(F_list), n_occ)`` lowest generalized eigenvalues of each ``F`` in the metric ``S``."""
    return np.stack([scipy.linalg.eigh(F, S, eigvals_only=True)[:n_occ] for F in F_list])


def equivariance_error(model: ModelBase, molecules: Iterable, n_rotations: int = 8, *, inversion: bool = False,
                       seed: int = 0, batch_size: int = 16, observables: bool = True, progress: bool = False) -> dict:
    """How far ``model`` is from rotation equivariance, in micro-Hartree.

    For every molecule ``x`` and each of ``n_rotations`` Haar-random rotations ``R``
    (the same ones for every molecule; fixed ``seed``), the error is
    ``D(R)^T H(R x) D(R) - H(x)`` over the matrix entries that exist (each entry of the
    full ``(nao, nao)`` matrix once).

    Parameters
    ----------
    model : ModelBase
        A hamnet model, or a :class:`RotationAveraged` one (to measure the residual).
    molecules : iterable
        What :meth:`ModelBase.predict` accepts: ``(Z, pos)``, ``ase.Atoms``, ``gto.Mole``.
    n_rotations : int
        Random rotations per molecule.
    inversion : bool
        Also test the improper rotations ``-R`` (parity).
    observables : bool
        Also report the deviation of the occupied orbital energies
        (``eig(D^T H(Rx) D, S(x))`` vs ``eig(H(x), S(x))``, closed shell, neutral), the
        observable the QH9 metrics use; needs PySCF overlaps.

    Returns
    -------
    dict
        ``mean_uHa``, ``max_uHa``, ``rms_uHa`` over all entries; ``on_site`` and
        ``off_site`` (diagonal and off-diagonal atom blocks) and ``by_block`` (per
        angular-momentum pair, ``"s-s"``, ``"s-p"``, ...) each with the same keys;
        ``eps_occ`` (if ``observables``); ``n_molecules``, ``n_rotations``, ``seconds``.
    """
    from tqdm.auto import tqdm

    if not isinstance(n_rotations, int) or n_rotations < 1:
        raise ValueError(f"n_rotations must be an integer >= 1, got {n_rotations!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    rots = [random_rotation(rng) for _ in range(n_rotations)]
    if inversion:
        rots = rots + [-R for R in rots]
    rots = np.stack(rots)
    D = padded_rotations(model.basis, rots)
    lab, names = _block_labels(model.basis)
    lab_t = torch.from_numpy(lab)
    total, on, off = _Stats(), _Stats(), _Stats()
    per = [_Stats() for _ in names]
    eps = _Stats()
    molecules = list(molecules)
    graphs = [model._graph(m) for m in molecules]
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(graphs), desc="equivariance", unit="mol", disable=not progress, leave=False)
    try:
        for start in range(0, len(graphs), batch_size):
            batch = to_device(collate(graphs[start : start + batch_size]), model.device)
            with torch.no_grad():
                ref = model(batch)
                chunk = max(1, MAX_ATOMS // max(len(batch[K.Z]), 1))
                diag_rot, off_rot = [], []
                for r0 in range(0, len(rots), chunk):
                    d_, o_, _ = _back_rotated(model, batch, rots[r0 : r0 + chunk], D[r0 : r0 + chunk])
                    diag_rot.append(d_)
                    off_rot.append(o_)
                diag_rot, off_rot = torch.cat(diag_rot).cpu(), torch.cat(off_rot).cpu()
            dm, om = ref[K.DIAG_MASK].cpu(), ref[K.OFFDIAG_MASK].cpu()
            ed = (diag_rot.double() - ref[K.DIAG].cpu().double())  # [k, n_atoms, n_pad, n_pad]
            eo = (off_rot.double() - ref[K.OFFDIAG].cpu().double())
            total.add(torch.cat([ed[:, dm], eo[:, om]], dim=1))
            on.add(ed[:, dm])
            off.add(eo[:, om])
            for k, st in enumerate(per):
                sel = lab_t == k
                st.add(torch.cat([ed[:, dm & sel], eo[:, om & sel]], dim=1))
            if observables:
                F0 = model.assemble(ref, batch)
                ptr, pptr = batch[K.PTR].tolist(), batch[K.PAIR_PTR].tolist()
                for m, g in enumerate(graphs[start : start + batch_size]):
                    Z, pos = g[K.Z].tolist(), g[K.POS].double().numpy()
                    S = molecule_mole(model.basis, Z, pos).intor("int1e_ovlp")  # once per molecule
                    n_occ = int(sum(Z)) // 2  # neutral, closed shell
                    Fr = [model.basis.assemble(diag_rot[r, ptr[m] : ptr[m + 1]], off_rot[r, pptr[m] : pptr[m + 1]], Z)
                          .double().numpy() for r in range(len(rots))]
                    e0 = _occupied_energies([F0[m].double().cpu().numpy()], S, n_occ)
                    eps.add(torch.from_numpy(_occupied_energies(Fr, S, n_occ) - e0))
            bar.update(len(graphs[start : start + batch_size]))
    finally:
        bar.close()
        model.train(was_training)
    report = {**total.report(), "on_site": on.report(), "off_site": off.report(),
              "by_block": {name: st.report() for name, st in zip(names, per)}}
    if observables:
        report["eps_occ"] = eps.report()
    report.update(n_molecules=len(graphs), n_rotations=len(rots), seconds=time.perf_counter() - t0)
    return report


def format_report(report: dict, title: str = "equivariance error") -> str:
    """A plain-text table of an :func:`equivariance_error` report."""
    rows = [("all entries", report)]
    rows += [("on-site blocks", report["on_site"]), ("off-site blocks", report["off_site"])]
    rows += [(f"  {name} blocks", r) for name, r in report["by_block"].items()]
    if "eps_occ" in report:
        rows.append(("occupied eps", report["eps_occ"]))
    lines = [f"{title} ({report['n_molecules']} molecules x {report['n_rotations']} rotations, micro-Hartree)",
             f"{'':<20}{'mean':>14}{'max':>14}{'rms':>14}"]
    for name, r in rows:
        lines.append(f"{name:<20}{r['mean_uHa']:>14.4g}{r['max_uHa']:>14.4g}{r['rms_uHa']:>14.4g}")
    return "\n".join(lines)
