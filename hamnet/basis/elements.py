"""Elements as hamnet names them: atomic numbers from symbols or numbers, and the basis error."""

from __future__ import annotations

from typing import Union

import numpy as np
from pyscf.data import elements as pyscf_elements

from hamnet.errors import HamnetError

__all__ = ["BasisError", "atomic_number", "symbol"]


class BasisError(HamnetError, ValueError):
    """A basis, element or AO convention hamnet cannot handle."""


def atomic_number(element: Union[int, str]) -> int:
    """Atomic number of an element given as symbol (``"C"``) or number (``6``)."""
    if isinstance(element, (int, np.integer)):
        z = int(element)
        if not 1 <= z < len(pyscf_elements.ELEMENTS):
            raise BasisError(f"atomic number {z} is not a known element")
        return z
    try:
        z = pyscf_elements.charge(str(element))
    except Exception as exc:  # pyscf raises KeyError/ValueError variants
        raise BasisError(f"unknown element symbol {element!r}") from exc
    if z < 1:  # pyscf maps some unknown symbols (and ghosts) to 0
        raise BasisError(f"unknown element symbol {element!r}")
    return z


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (PySCF's table)."""
    return pyscf_elements.ELEMENTS[z]
