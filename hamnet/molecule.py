"""Molecules from user input: geometry checks, geometry files, PySCF ``Mole`` objects.

The one place that turns atomic numbers and positions (Angstrom) into a checked
geometry or a built :class:`pyscf.gto.Mole`, used by the SCF bridge, the data labeling,
the evaluation and the tests alike. Imports numpy and PySCF only (no torch), so data
workers stay light. Every problem with the input raises :class:`hamnet.errors.GraphError`
(a ``ValueError``) naming it; a missing file raises :class:`hamnet.errors.MissingFileError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from pyscf import gto
from pyscf.data import elements as pyscf_elements

from hamnet.errors import GraphError, MissingFileError

__all__ = ["MIN_DISTANCE", "validate_geometry", "read_geometry", "build_mole", "read_mole"]

MIN_DISTANCE = 0.1  # Angstrom; closer atoms are almost surely a unit or input mistake


def _symbol(z: int) -> str:
    return pyscf_elements.ELEMENTS[z] if 0 < z < len(pyscf_elements.ELEMENTS) else f"Z={z}"


def validate_geometry(
    Z, pos, elements: Optional[Iterable[int]] = None, min_distance: float = MIN_DISTANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Check a geometry and return it as ``(Z int64 (n,), pos float64 (n, 3) Angstrom)``.

    Raises
    ------
    GraphError
        Empty molecule, shape mismatch, NaN/inf coordinates, an element outside
        ``elements``, or two atoms closer than ``min_distance`` Angstrom.
    """
    Z = np.asarray(Z)
    try:
        pos = np.asarray(pos, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"positions are not a numeric (n_atoms, 3) array: {exc}") from exc
    if Z.ndim != 1 or Z.size == 0:
        raise GraphError(f"a molecule needs at least one atom; got Z of shape {Z.shape}")
    if not np.issubdtype(Z.dtype, np.integer):
        raise GraphError(f"atomic numbers must be integers, got dtype {Z.dtype}")
    Z = Z.astype(np.int64)
    if Z.min() < 1 or Z.max() >= len(pyscf_elements.ELEMENTS):
        raise GraphError(f"atomic numbers must be 1..{len(pyscf_elements.ELEMENTS) - 1}, got {sorted(set(Z.tolist()))}")
    if pos.shape != (len(Z), 3):
        raise GraphError(f"positions must have shape ({len(Z)}, 3) for {len(Z)} atoms, got {pos.shape}")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        raise GraphError(f"non-finite (NaN or inf) coordinates for atom(s) {np.flatnonzero(bad).tolist()}")
    if elements is not None:
        allowed = set(int(e) for e in elements)
        missing = sorted(set(Z.tolist()) - allowed)
        if missing:
            have = ", ".join(_symbol(z) for z in sorted(allowed))
            raise GraphError(
                f"element(s) {', '.join(_symbol(z) for z in missing)} not supported: "
                f"this model was built for {have}"
            )
    if len(Z) > 1:
        d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
        d[np.diag_indices(len(Z))] = np.inf
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < min_distance:
            raise GraphError(
                f"atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3g} Angstrom apart "
                f"(< {min_distance} Angstrom); are the coordinates in Bohr or duplicated?"
            )
    return Z, pos


def read_geometry(path) -> tuple[np.ndarray, np.ndarray]:
    """``(Z (n,) int64, pos (n, 3) float64 Angstrom)`` of a geometry file, checked.

    Any format ASE reads (xyz, extxyz, pdb, ...); a multi-frame file gives its last frame.

    Raises
    ------
    MissingFileError
        No such file.
    GraphError
        A file ASE cannot read as a molecule, or a geometry :func:`validate_geometry`
        refuses (NaN/inf coordinates, no atoms, atoms on top of each other).
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no geometry file at {path}")
    try:
        atoms = ase.io.read(str(path))
    except Exception as exc:  # noqa: BLE001 - ase raises a different error per format
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GraphError(
            f"cannot read a molecule from {str(path)!r} (xyz or another format ASE reads, "
            f"Angstrom): {reason}"
        ) from exc
    if isinstance(atoms, list):  # some readers return every frame
        atoms = atoms[-1]
    try:
        return validate_geometry(atoms.get_atomic_numbers(), atoms.get_positions())
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from exc


def build_mole(Z, pos, basis, *, charge: int = 0, spin: Optional[int] = None) -> gto.Mole:
    """A built PySCF molecule from atomic numbers and positions (checked first).

    Parameters
    ----------
    Z : array_like of int, shape (n_atoms,)
    pos : array_like of float, shape (n_atoms, 3), Angstrom
    basis : str or dict
        PySCF basis.
    charge : int
    spin : int, optional
        ``2S = N_alpha - N_beta`` (PySCF's convention, not the multiplicity); default the
        lowest spin the electron count allows (0 or 1).

    Raises
    ------
    GraphError
        A geometry :func:`validate_geometry` refuses, or a charge and spin that do not fit
        the electron count.
    """
    Z, pos = validate_geometry(np.asarray(Z).reshape(-1), pos)
    nelec = int(Z.sum()) - int(charge)
    if spin is None:
        spin = nelec % 2 if nelec >= 0 else 0
    if nelec < 0 or (nelec - int(spin)) % 2 or abs(int(spin)) > nelec:
        raise GraphError(
            f"charge {charge} and spin {spin} are inconsistent: {nelec} electrons, and "
            "spin = 2S = N_alpha - N_beta must have the parity of the electron count"
        )
    atoms = [(int(z), tuple(float(x) for x in p)) for z, p in zip(Z, pos)]
    return gto.M(atom=atoms, unit="Angstrom", basis=basis, charge=int(charge), spin=int(spin), verbose=0)


def read_mole(path, basis, *, charge: int = 0, spin: Optional[int] = None) -> gto.Mole:
    """:func:`read_geometry` then :func:`build_mole` (``spin`` default: the lowest)."""
    Z, pos = read_geometry(path)
    return build_mole(Z, pos, basis, charge=charge, spin=spin)
