"""Orbital-block heads: equivariant features -> padded (n_pad, n_pad) blocks in Hartree.

A head is an e3nn linear map from the features to :attr:`OrbitalBasis.block_irreps`,
followed by the orthonormal Clebsch-Gordan map of :mod:`hamnet.basis` to PySCF-order
padded blocks. The diagonal head adds a learned per-element constant to the ``0e``
components (an isotropic atomic reference, e.g. core-orbital energies), which is
invariant and can be initialized from data (:meth:`BlockHead.set_reference`).
Symmetrization and masking are the model's job (they need the pair structure).
"""

from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import nn

from hamnet.basis import OrbitalBasis

__all__ = ["BlockHead"]


class BlockHead(nn.Module):
    """Features -> padded blocks.

    Parameters
    ----------
    irreps_in : o3.Irreps
        Node or pair features; must contain every irrep type of ``basis.block_irreps``.
    basis : OrbitalBasis
    n_elements : int, optional
        If given, a learned ``(n_elements, n_0e)`` reference is added to the ``0e``
        components, selected by the element index passed to :meth:`forward`.
    """

    def __init__(self, irreps_in, basis: OrbitalBasis, n_elements: Optional[int] = None):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = basis.block_irreps
        missing = {ir for _, ir in self.irreps_out} - {ir for _, ir in self.irreps_in}
        if missing:
            raise ValueError(
                f"head features {self.irreps_in} lack irreps {sorted(missing)} needed by "
                f"the blocks {self.irreps_out} of basis {basis.basis!r}"
            )
        self.n_pad = basis.n_pad
        self.linear = o3.Linear(self.irreps_in, self.irreps_out)
        dim = self.irreps_out.dim
        # [dim, n_pad * n_pad]: row k is the padded block of irreps component k.
        u = basis.irreps_to_padded(torch.eye(dim, dtype=torch.float64)).reshape(dim, -1)
        self.register_buffer("to_block", u.to(torch.get_default_dtype()), persistent=False)
        scalar = torch.cat(
            [torch.arange(sl.start, sl.stop) for (_, ir), sl in zip(self.irreps_out, self.irreps_out.slices())
             if ir == o3.Irrep("0e")]
        )
        self.register_buffer("scalar_index", scalar, persistent=False)  # [n_0e]
        self.reference = None
        if n_elements is not None:
            self.reference = nn.Parameter(torch.zeros(n_elements, len(scalar)))  # Hartree

    def irreps(self, f: torch.Tensor, element: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``(n, block_irreps.dim)`` (before the CG map)."""
        x = self.linear(f)  # [n, dim]
        if self.reference is not None:
            if element is None:
                raise ValueError("this head has an element reference: pass the element index")
            x = x.index_add(1, self.scalar_index, self.reference[element])
        return x

    def forward(self, f: torch.Tensor, element: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``(n, n_pad, n_pad)`` blocks, PySCF order, Hartree."""
        x = self.irreps(f, element)
        return (x @ self.to_block.to(x.dtype)).reshape(-1, self.n_pad, self.n_pad)

    @torch.no_grad()
    def set_reference(self, values: torch.Tensor) -> None:
        """Set the ``(n_elements, n_0e)`` reference (``0e`` components, Hartree)."""
        if self.reference is None:
            raise ValueError("this head has no element reference")
        if tuple(values.shape) != tuple(self.reference.shape):
            raise ValueError(f"reference must have shape {tuple(self.reference.shape)}, got {tuple(values.shape)}")
        self.reference.copy_(values)
