"""Shared pieces of the readers: the error type, AO counts and import metadata."""

from __future__ import annotations

import functools
from pathlib import Path

from hamnet.data import keys as K


class ReaderError(ValueError):
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
