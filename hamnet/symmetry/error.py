"""How equivariant is a model? Its equivariance error, in micro-Hartree.

:func:`equivariance_error` rotates each molecule by random rotations ``R``, rotates the
prediction back, ``D(R)^T H(R x) D(R)``, and reports its deviation from ``H(x)`` --
overall, on-site/off-site and per angular-momentum block type (``s-s``, ``s-p``, ...) --
and what it does to an observable, the occupied orbital energies. ``D`` is the AO
rotation of :mod:`hamnet.basis` (verified against PySCF's integrals).
:func:`hamnet.symmetry.report.format_report` prints the result.
"""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import scipy.linalg
import torch

from hamnet.errors import ConfigError
from hamnet import graph_keys as GK
from hamnet.basis import OrbitalBasis
from hamnet.graph import collate, to_device
from hamnet.molecule import build_mole
from hamnet.nn.base import ModelBase
from hamnet.progress import progress_bar
from hamnet.symmetry.augment import MAX_ATOMS, back_rotated
from hamnet.symmetry.grids import padded_rotations, random_rotation

__all__ = ["equivariance_error"]

_LNAMES = "spdfghik"


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
    if not isinstance(n_rotations, int) or n_rotations < 1:
        raise ConfigError(f"n_rotations must be an integer >= 1, got {n_rotations!r}")
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
    bar = progress_bar(progress, total=len(graphs), desc="equivariance", unit="mol", leave=False)
    try:
        for start in range(0, len(graphs), batch_size):
            batch = to_device(collate(graphs[start : start + batch_size]), model.device)
            with torch.no_grad():
                ref = model(batch)
                chunk = max(1, MAX_ATOMS // max(len(batch[GK.Z]), 1))
                diag_rot, off_rot = [], []
                for r0 in range(0, len(rots), chunk):
                    d_, o_, _ = back_rotated(model, batch, rots[r0 : r0 + chunk], D[r0 : r0 + chunk])
                    diag_rot.append(d_)
                    off_rot.append(o_)
                diag_rot, off_rot = torch.cat(diag_rot).cpu(), torch.cat(off_rot).cpu()
            dm, om = ref[GK.DIAG_MASK].cpu(), ref[GK.OFFDIAG_MASK].cpu()
            ed = (diag_rot.double() - ref[GK.DIAG].cpu().double())  # [k, n_atoms, n_pad, n_pad]
            eo = (off_rot.double() - ref[GK.OFFDIAG].cpu().double())
            total.add(torch.cat([ed[:, dm], eo[:, om]], dim=1))
            on.add(ed[:, dm])
            off.add(eo[:, om])
            for k, st in enumerate(per):
                sel = lab_t == k
                st.add(torch.cat([ed[:, dm & sel], eo[:, om & sel]], dim=1))
            if observables:
                F0 = model.assemble(ref, batch)
                ptr, pptr = batch[GK.PTR].tolist(), batch[GK.PAIR_PTR].tolist()
                for m, g in enumerate(graphs[start : start + batch_size]):
                    Z, pos = g[GK.Z].tolist(), g[GK.POS].double().numpy()
                    S = build_mole(Z, pos, model.basis.basis).intor("int1e_ovlp")  # once per molecule
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
