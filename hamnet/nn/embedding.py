"""Element embedding: atomic numbers -> one-hot element index -> invariant node features."""

from __future__ import annotations

from typing import Sequence

import torch
from e3nn import o3
from torch import nn

from hamnet.basis import atomic_number


class ElementEmbedding(nn.Module):
    """Map atomic numbers to one-hot codes and to initial scalar node features.

    Parameters
    ----------
    elements : sequence of int or str
        The elements the model is built for; their order (sorted atomic number) defines
        the element index.
    irreps_out : e3nn.o3.Irreps
        Scalar irreps (``mul x 0e``) of the initial node features.
    """

    def __init__(self, elements: Sequence, irreps_out):
        super().__init__()
        zs = sorted({atomic_number(e) for e in elements})
        self.elements = tuple(zs)
        self.n_elements = len(zs)
        self.irreps_out = o3.Irreps(irreps_out)
        if any(ir.l != 0 or ir.p != 1 for _, ir in self.irreps_out):
            raise ValueError(f"element embedding must output scalars (0e), got {self.irreps_out}")
        lookup = torch.full((max(zs) + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(zs)] = torch.arange(len(zs))
        self.register_buffer("lookup", lookup, persistent=False)  # [max_Z + 1]
        self.linear = nn.Linear(self.n_elements, self.irreps_out.dim, bias=False)
        nn.init.normal_(self.linear.weight)  # unit-variance features for every element

    def index(self, Z: torch.Tensor) -> torch.Tensor:
        """``(n,)`` atomic numbers -> ``(n,)`` element index in ``0..n_elements-1``.

        Raises ``ValueError`` naming the elements the model does not know.
        """
        bad = (Z < 1) | (Z >= len(self.lookup))
        idx = self.lookup[Z.clamp(0, len(self.lookup) - 1)]
        bad = bad | (idx < 0)
        if bool(bad.any()):
            unknown = sorted(set(Z[bad].tolist()))
            raise ValueError(
                f"atomic number(s) {unknown} not supported: the model was built for {list(self.elements)}"
            )
        return idx

    def forward(self, Z: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(index (n,), one_hot (n, n_elements), features (n, irreps_out.dim))``."""
        idx = self.index(Z)
        onehot = nn.functional.one_hot(idx, self.n_elements).to(dtype)  # [n, n_el]
        return idx, onehot, self.linear(onehot)  # [n, dim]
