"""Sparse atom pairs: O(N) neighbour search, the dense pair rows of a batch, and sparse assembly.

A backbone with a pair cutoff needs features and blocks only for the ordered pairs
``(i, j)``, ``i != j``, of the same molecule closer than the cutoff. This module finds them
with a cell-list neighbour search (``vesin``, linear in the number of atoms), maps them
to the rows of the batch's dense pair list (:data:`hamnet.graph_keys.PAIR_INDEX`, where
the training loss expects every pair), and assembles predicted blocks straight into the
``(nao, nao)`` matrix of a molecule without materializing the absent pairs.
"""

from __future__ import annotations

import numpy as np
import torch

from hamnet.basis import OrbitalBasis

__all__ = ["neighbor_pairs", "dense_pair_rows", "reverse_pairs", "SparseAssembler"]


def neighbor_pairs(pos, ptr, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordered pairs ``(i, j)``, ``i != j``, of the same molecule with ``|r_j - r_i| < cutoff``.

    Parameters
    ----------
    pos : (n_atoms, 3) tensor or array, Angstrom (read only: the search is not differentiated)
    ptr : (n_mol + 1,) atom offsets of the molecules
    cutoff : float, Angstrom

    Returns
    -------
    i, j : (n_found,) int64 tensors of global atom ids, sorted by ``(i, j)``, on ``pos``'s device.
    """
    import vesin

    device = pos.device if isinstance(pos, torch.Tensor) else torch.device("cpu")
    x = pos.detach().cpu().numpy() if isinstance(pos, torch.Tensor) else np.asarray(pos)
    x = x.astype(np.float64)
    ptr = [int(p) for p in (ptr.tolist() if isinstance(ptr, torch.Tensor) else ptr)]
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    found_i, found_j = [], []
    for a0, a1 in zip(ptr[:-1], ptr[1:]):
        if a1 - a0 < 2:
            continue
        i, j, d = nl.compute(x[a0:a1], np.zeros((3, 3)), False, "ijd")
        keep = d < cutoff  # vesin includes pairs at exactly the cutoff
        found_i.append(i[keep].astype(np.int64) + a0)
        found_j.append(j[keep].astype(np.int64) + a0)
    if not found_i:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty.clone()
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    order = np.lexsort((j, i))
    return torch.from_numpy(i[order]).to(device), torch.from_numpy(j[order]).to(device)


def dense_pair_rows(i: torch.Tensor, j: torch.Tensor, batch: torch.Tensor, ptr: torch.Tensor,
                    pair_ptr: torch.Tensor) -> torch.Tensor:
    """Row of each pair ``(i, j)`` in the batch's dense pair list (:meth:`OrbitalBasis.pair_index` order).

    Molecule ``m`` with ``n`` atoms lists its pairs row by row, ``j != i`` ascending, so
    ``(i, j)`` (local ids) is row ``pair_ptr[m] + i (n - 1) + j - [j > i]``.
    """
    m = batch[i]
    il, jl = i - ptr[m], j - ptr[m]
    n = ptr[m + 1] - ptr[m]
    return pair_ptr[m] + il * (n - 1) + jl - (jl > il).long()


def reverse_pairs(i: torch.Tensor, j: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """For pairs sorted by ``(i, j)`` and closed under reversal: the position of ``(j, i)``."""
    key = i * n_atoms + j
    rev = torch.searchsorted(key, j * n_atoms + i)
    if len(key) and not bool((key[rev.clamp_max(len(key) - 1)] == j * n_atoms + i).all()):
        raise ValueError("the pair list is not closed under (i, j) -> (j, i)")
    return rev


class SparseAssembler:
    """Padded blocks of the pairs a model kept -> full ``(nao, nao)`` matrices.

    Parameters
    ----------
    basis : OrbitalBasis

    The blocks are the raw outputs of the heads (in the padded layout, entries outside an
    element's orbitals ignored); :meth:`assemble` writes each into its AO rows and
    columns and returns ``(F + F^T) / 2``, which equals :meth:`ModelBase._symmetric_blocks`
    followed by :meth:`OrbitalBasis.assemble` with zero blocks for absent pairs.
    """

    def __init__(self, basis: OrbitalBasis):
        self.basis = basis
        z = list(basis.elements)
        self.pad_index = [torch.as_tensor(basis.pad_index[e]) for e in z]  # per element index
        self.nao_el = torch.tensor([len(p) for p in self.pad_index])

    def _write(self, F, blocks, rows_el, cols_el, row_off, col_off):
        """``F[row_off + a, col_off + b] = blocks[:, pad(a), pad(b)]`` for each element pair group."""
        n_el = len(self.pad_index)
        group = rows_el * n_el + cols_el
        for g in torch.unique(group).tolist():
            sel = torch.nonzero(group == g).squeeze(-1)
            pa, pb = self.pad_index[g // n_el].to(F.device), self.pad_index[g % n_el].to(F.device)
            vals = blocks[sel][:, pa][:, :, pb]  # [n_sel, nao_a, nao_b]
            r = row_off[sel, None] + torch.arange(len(pa), device=F.device)  # [n_sel, nao_a]
            c = col_off[sel, None] + torch.arange(len(pb), device=F.device)  # [n_sel, nao_b]
            F[r[:, :, None], c[:, None, :]] = vals.to(F.dtype)

    def offsets(self, elem: torch.Tensor) -> tuple[torch.Tensor, int]:
        """AO offset of each atom ``(n_atoms,)`` and ``nao`` of a molecule with element indices ``elem``."""
        sizes = self.nao_el.to(elem.device)[elem]
        off = torch.cumsum(sizes, 0) - sizes
        return off, int(sizes.sum())

    def new(self, elem: torch.Tensor, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """An empty ``(nao, nao)`` matrix and the atom offsets of one molecule."""
        off, nao = self.offsets(elem)
        return torch.zeros((nao, nao), dtype=dtype, device=device), off

    def add_diag(self, F, off, elem, diag) -> None:
        """Write ``diag`` ``(n_atoms, n_pad, n_pad)`` (local atoms) into ``F``."""
        self._write(F, diag, elem, elem, off, off)

    def add_pairs(self, F, off, elem, i, j, blocks) -> None:
        """Write ``blocks`` ``(n_pairs, n_pad, n_pad)`` of local pairs ``(i, j)`` into ``F``."""
        if len(i):
            self._write(F, blocks, elem[i], elem[j], off[i], off[j])

    @staticmethod
    def finish(F: torch.Tensor) -> torch.Tensor:
        """``(F + F^T) / 2``: exactly symmetric."""
        return 0.5 * (F + F.T)
