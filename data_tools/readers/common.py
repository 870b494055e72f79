"""Shared pieces of the readers: the error type, AO counts, import metadata, the
plausibility check of total energies and the stated level of theory."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hamnet.data import keys as K
from hamnet.errors import HamnetError


class ReaderError(HamnetError, ValueError):
    """An input file is not in the schema its reader expects (or is damaged)."""


@functools.lru_cache(maxsize=64)
def _orbital_basis(basis: str, elements: tuple[int, ...]):
    from hamnet.basis import OrbitalBasis

    return OrbitalBasis(basis, elements)


def layout_of(basis: str, Z):
    """:class:`hamnet.basis.MoleculeLayout` of atoms ``Z`` in ``basis``."""
    zs = tuple(sorted({int(z) for z in Z}))
    return _orbital_basis(basis, zs).layout([int(z) for z in Z])


def radial_ls_of(basis: str, z: int) -> tuple[int, ...]:
    """``l`` of each radial function (shell) of element ``z`` in ``basis``, PySCF order."""
    return _orbital_basis(basis, (int(z),)).radial_ls[int(z)]


def nao_of(basis: str, Z) -> int:
    """Number of AOs of atoms ``Z`` in ``basis`` (from :mod:`hamnet.basis`)."""
    return layout_of(basis, Z).nao


def import_metadata(path: Path, fmt: str, **fields) -> dict:
    """Metadata common to every import (recipe ``import:<fmt>`` and the source file)."""
    meta = {
        K.META_RECIPE: f"import:{fmt}",
        K.META_SOURCE: {"file": str(Path(path).absolute()), "format": fmt},
    }
    meta.update(fields)
    return meta


# ---- energies ---------------------------------------------------------------------------

#: Coefficients of the Thomas-Fermi energy with Scott and Schwinger corrections,
#: ``E(Z) ~ -0.768745 Z^(7/3) + Z^2/2 - 0.269900 Z^(5/3)`` Hartree (Schwinger, Phys. Rev.
#: A 24, 2353 (1981)): the nonrelativistic ground-state energy of a neutral free atom,
#: within 0.32 Ha of the exact value for H-F and within 0.7 % from Ne to Kr (checked
#: against exact and Hartree-Fock-limit energies).
_TF, _SCOTT, _SCHWINGER = 0.768745, 0.5, 0.269900
#: Plausibility window half-width: per electron (correlation, basis and method spread),
#: per atom (binding), and relative (accuracy of the atomic estimate), Hartree.
ENERGY_TOL_PER_ELECTRON = 0.05
ENERGY_TOL_PER_ATOM = 0.3
ENERGY_TOL_RELATIVE = 0.01
#: All-electron elements only: the def2 family uses ECPs beyond Kr, and relativistic
#: effects grow past ~1 % there, so the estimate does not apply.
ENERGY_CHECK_MAX_Z = 36


def free_atom_energy(z: int) -> float:
    """Estimated nonrelativistic total energy of the neutral free atom ``z``, Hartree."""
    z = float(z)
    return -_TF * z ** (7.0 / 3.0) + _SCOTT * z**2 - _SCHWINGER * z ** (5.0 / 3.0)


def plausible_energy_window(Z) -> Optional[tuple[float, float, float]]:
    """``(low, high, sum of free-atom energies)`` in Hartree for a molecule of atoms ``Z``.

    A total SCF energy (HF or DFT, any reasonable basis) of a neutral molecule near its
    equilibrium lies within ``E_atoms +- (0.05 N_electrons + 0.3 N_atoms + 0.01 |E_atoms|)``
    of the sum ``E_atoms`` of :func:`free_atom_energy`: water (-76.4 Ha at PBE) gives
    ``[-78.3, -74.0]``. ``None`` when an element heavier than Kr makes the estimate
    inapplicable.
    """
    Z = [int(z) for z in Z]
    if not Z or max(Z) > ENERGY_CHECK_MAX_Z:
        return None
    e_atoms = sum(free_atom_energy(z) for z in Z)
    tol = (ENERGY_TOL_PER_ELECTRON * sum(Z) + ENERGY_TOL_PER_ATOM * len(Z)
           + ENERGY_TOL_RELATIVE * abs(e_atoms))
    return e_atoms - tol, e_atoms + tol, e_atoms


def check_energy(energy: float, Z, where: str, hint: str = "") -> None:
    """Raise :class:`ReaderError` if ``energy`` (Hartree) is implausible for atoms ``Z``.

    See :func:`plausible_energy_window`; ``hint`` is appended to the message.
    """
    window = plausible_energy_window(Z)
    if window is None:
        return
    low, high, e_atoms = window
    if not (np.isfinite(energy) and low <= energy <= high):
        raise ReaderError(
            f"{where}: energy {energy:.6f} Ha is implausible for these {len(Z)} atoms (a total "
            f"SCF energy lies in [{low:.1f}, {high:.1f}] Ha around the free-atom sum "
            f"{e_atoms:.1f} Ha); the file's energies are probably shifted by a constant"
            + (f" ({hint})" if hint else "")
        )


def xc_definition(xc: str) -> str:
    """How the installed PySCF parses ``xc`` ("hf": Hartree-Fock, no libxc terms)."""
    if xc.strip().lower() == "hf":
        return "Hartree-Fock (exact exchange 1, no density functional)"
    from pyscf.dft import libxc

    hyb, terms = libxc.parse_xc(xc)
    parts = " + ".join(f"{float(w):g} * libxc {int(i)}" for i, w in terms)
    return f"exact exchange {tuple(float(h) for h in hyb)}; {parts}"


def normalize_xc(xc: Optional[str], allowed: Sequence[str], what: str) -> Optional[str]:
    """``xc`` lower-cased and checked against ``allowed`` (``None`` passes through)."""
    if xc is None:
        return None
    name = str(xc).strip().lower()
    if name not in allowed:
        raise ReaderError(
            f"--xc {xc!r} is not a level of theory of {what}; choose one of {', '.join(allowed)}"
        )
    return name
