"""Atomic graphs: molecules as dicts of tensors (keys in :mod:`hamnet.graph_keys`).

A molecule becomes a graph whose nodes are its atoms and whose *pairs* are all ordered
atom pairs ``(i, j)``, ``i != j`` (molecular Hamiltonians are dense, so every pair gets
an off-diagonal block). Message-passing edges are the pairs shorter than the model's
cutoff; they are derived from the positions inside the model (:func:`cutoff_edges`), so a
graph never disagrees with the model it is fed to. Several molecules of different sizes
are batched by :func:`collate`.

Geometry is validated here, once, with errors that name the problem: an empty molecule,
non-finite coordinates, atoms closer than :data:`MIN_DISTANCE` Angstrom, and elements a
model was not built for all raise :class:`GraphError`.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from pyscf import gto
from pyscf.data import elements as pyscf_elements

from hamnet import graph_keys as GK
from hamnet.basis import BasisError, OrbitalBasis, atomic_number
from hamnet.errors import GraphError
from hamnet.molecule import MIN_DISTANCE, validate_geometry

__all__ = [
    "GraphError",
    "MIN_DISTANCE",
    "geometry_of",
    "validate_geometry",
    "molecule_graph",
    "collate",
    "to_device",
    "cutoff_edges",
    "pair_reverse",
    "ao_index_maps",
]

Graph = dict  # dict[str, torch.Tensor], keys from hamnet.graph_keys


# ---- geometry input --------------------------------------------------------------------


def geometry_of(molecule) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and positions in Angstrom of a molecule in any accepted form.

    Parameters
    ----------
    molecule : ase.Atoms or pyscf.gto.Mole or (Z, positions)
        ``Z`` is a sequence of atomic numbers or symbols, ``positions`` an
        ``(n_atoms, 3)`` array in Angstrom. A Mole's coordinates are converted from
        its own unit.

    Returns
    -------
    Z : (n_atoms,) int64
    pos : (n_atoms, 3) float64, Angstrom
    """
    if isinstance(molecule, gto.Mole):
        if not molecule._built:
            raise GraphError("the pyscf Mole is not built; call mol.build() first")
        ghosts = [i for i in range(molecule.natm) if molecule.atom_charge(i) == 0]
        if ghosts:
            raise GraphError(f"ghost atoms (zero nuclear charge) are not supported: atom(s) {ghosts}")
        Z = [pyscf_elements.charge(molecule.atom_pure_symbol(i)) for i in range(molecule.natm)]
        pos = molecule.atom_coords(unit="Angstrom")
        return np.asarray(Z, dtype=np.int64).reshape(-1), np.asarray(pos, dtype=np.float64)
    if hasattr(molecule, "get_atomic_numbers") and hasattr(molecule, "get_positions"):
        if hasattr(molecule, "pbc") and np.any(molecule.pbc):
            raise GraphError("periodic ase.Atoms are not supported: hamnet predicts molecules")
        return (
            np.asarray(molecule.get_atomic_numbers(), dtype=np.int64).reshape(-1),
            np.asarray(molecule.get_positions(), dtype=np.float64),  # ase uses Angstrom
        )
    if isinstance(molecule, (tuple, list)) and len(molecule) == 2:
        Z, pos = molecule
        zs = []
        for z in np.asarray(Z, dtype=object).reshape(-1):
            try:
                zs.append(atomic_number(z))
            except BasisError as exc:
                raise GraphError(str(exc)) from exc
            if zs[-1] < 1:  # pyscf maps unknown symbols to 0 (ghost atoms)
                raise GraphError(f"unknown element symbol {z!r}")
        try:
            pos = np.asarray(pos, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise GraphError(f"positions are not a numeric (n_atoms, 3) array: {exc}") from exc
        return np.asarray(zs, dtype=np.int64), pos
    raise GraphError(
        "a molecule must be an ase.Atoms, a built pyscf.gto.Mole or a pair "
        f"(Z, positions_in_Angstrom); got {type(molecule).__name__}"
    )


# ---- graphs ------------------------------------------------------------------------------


def pair_reverse(n_atoms: int) -> np.ndarray:
    """For each ordered pair ``(i, j)`` of :meth:`OrbitalBasis.pair_index`: the row of ``(j, i)``."""
    ii, jj = OrbitalBasis.pair_index(n_atoms)
    row = np.full((n_atoms, n_atoms), -1, dtype=np.int64)
    row[ii, jj] = np.arange(len(ii))
    return row[jj, ii]


def molecule_graph(
    Z,
    pos,
    *,
    basis: Optional[OrbitalBasis] = None,
    fock=None,
    elements: Optional[Iterable[int]] = None,
    dtype: torch.dtype = torch.float64,
    min_distance: float = MIN_DISTANCE,
    overlap=None,
    nocc: Optional[int] = None,
) -> Graph:
    """Graph of one molecule, optionally with target blocks for training.

    Parameters
    ----------
    Z : (n_atoms,) int
        Atomic numbers.
    pos : (n_atoms, 3) float
        Positions in Angstrom.
    basis : OrbitalBasis, optional
        Needed with ``fock``; its elements also restrict ``Z`` when ``elements`` is None.
    fock : (nao, nao) array, optional
        Target Fock/Kohn-Sham matrix in Hartree, PySCF AO order of ``basis``. Split into
        padded blocks (:data:`hamnet.graph_keys.TARGET_DIAG`, :data:`hamnet.graph_keys.TARGET_OFFDIAG`).
    elements : iterable of int, optional
        Allowed atomic numbers (default: ``basis.elements`` if a basis is given).
    dtype : torch.dtype
        Floating dtype of positions and targets (the model casts to its own).
    overlap : (nao, nao) array, optional
        AO overlap ``S`` (dimensionless, PySCF AO order of ``basis``). Adds the inputs of
        the spectral losses (:data:`hamnet.graph_keys.SPECTRAL_KEYS`, :mod:`hamnet.spectral`):
        the Löwdin blocks of ``X = S^-1/2`` (always float64), the AO index maps of a loop-free
        batched assembly, ``nao`` and ``nocc``.
    nocc : int, optional
        Doubly occupied orbitals, with ``overlap`` (default ``sum(Z) // 2``, a neutral
        closed shell; an odd electron count is an error).

    Returns
    -------
    dict of str -> torch.Tensor
        Keys :data:`hamnet.graph_keys.INPUT_KEYS` (+ targets), a batch of one molecule.
    """
    if elements is None and basis is not None:
        elements = basis.elements
    Z, pos = validate_geometry(Z, pos, elements, min_distance)
    n = len(Z)
    ii, jj = OrbitalBasis.pair_index(n)
    g = {
        GK.Z: torch.from_numpy(Z),
        GK.POS: torch.as_tensor(pos, dtype=dtype),
        GK.BATCH: torch.zeros(n, dtype=torch.long),
        GK.PTR: torch.tensor([0, n], dtype=torch.long),
        GK.PAIR_INDEX: torch.from_numpy(np.stack([ii, jj]).astype(np.int64)),
        GK.PAIR_REVERSE: torch.from_numpy(pair_reverse(n)),
        GK.PAIR_PTR: torch.tensor([0, len(ii)], dtype=torch.long),
    }
    if fock is not None:
        if basis is None:
            raise GraphError("a target fock matrix needs the OrbitalBasis it is expressed in")
        F = np.asarray(fock.detach().cpu() if isinstance(fock, torch.Tensor) else fock, dtype=np.float64)
        if not np.isfinite(F).all():
            raise GraphError("target fock matrix contains NaN or inf")
        try:
            diag, off = basis.split(F, Z)
        except ValueError as exc:
            raise GraphError(f"target fock matrix does not fit the molecule: {exc}") from exc
        asym = np.abs(F - F.T).max()
        if asym > 1e-5 * max(1.0, np.abs(F).max()):
            raise GraphError(f"target fock matrix is not symmetric (max |F - F^T| = {asym:.2e} Hartree)")
        g[GK.TARGET_DIAG] = torch.as_tensor(diag, dtype=dtype)
        g[GK.TARGET_OFFDIAG] = torch.as_tensor(off, dtype=dtype)
    if overlap is not None:
        if basis is None:
            raise GraphError("an overlap matrix needs the OrbitalBasis it is expressed in")
        g.update(_spectral_inputs(basis, Z, overlap, nocc))
    return g


def ao_index_maps(basis: OrbitalBasis, Z) -> tuple[np.ndarray, np.ndarray]:
    """AO index maps of one molecule (:data:`hamnet.graph_keys.AO_SRC`, :data:`~hamnet.graph_keys.AO_DST`).

    Returns
    -------
    src : (nao * nao,) int64
        For entry ``(mu, nu)`` (row-major): its position in the flattened
        ``concat([diag, offdiag])`` padded blocks of this molecule alone.
    dst : (nao * nao,) int64
        ``mu * nao + nu``, its position in the flattened ``(nao, nao)`` matrix.
    """
    lay = basis.layout(Z)
    n2 = basis.n_pad * basis.n_pad
    pair, within = np.divmod(lay.gather, n2)  # pair id i * n_atoms + j, position inside the block
    src = OrbitalBasis.pair_positions(lay.n_atoms)[pair] * n2 + within
    return src.astype(np.int64), np.arange(lay.nao * lay.nao, dtype=np.int64)


def _spectral_inputs(basis: OrbitalBasis, Z: np.ndarray, overlap, nocc) -> dict:
    """The :data:`hamnet.graph_keys.SPECTRAL_KEYS` of one molecule (see :func:`molecule_graph`)."""
    from hamnet.spectral import SpectralError, lowdin

    nao = basis.layout(Z).nao
    S = np.asarray(overlap.detach().cpu() if isinstance(overlap, torch.Tensor) else overlap, dtype=np.float64)
    if S.shape != (nao, nao):
        raise GraphError(f"overlap matrix of shape {S.shape} does not fit the molecule's {nao} AOs")
    if nocc is None:
        n_el = int(np.sum(Z))
        if n_el % 2:
            raise GraphError(f"{n_el} electrons: give nocc for a charged closed-shell molecule")
        nocc = n_el // 2
    nocc = int(nocc)
    if not 0 < nocc < nao:
        raise GraphError(f"nocc={nocc} must be between 1 and nao-1={nao - 1}")
    try:
        X = lowdin(S)
    except SpectralError as exc:
        raise GraphError(str(exc)) from exc
    x_diag, x_off = basis.split(X, Z)
    src, dst = ao_index_maps(basis, Z)
    return {
        GK.NAO: torch.tensor([nao], dtype=torch.long),
        GK.NOCC: torch.tensor([nocc], dtype=torch.long),
        GK.AO_SRC: torch.from_numpy(src),
        GK.AO_DST: torch.from_numpy(dst),
        GK.LOWDIN_DIAG: torch.as_tensor(x_diag, dtype=torch.float64),
        GK.LOWDIN_OFFDIAG: torch.as_tensor(x_off, dtype=torch.float64),
    }


def collate(graphs: Sequence[Mapping[str, torch.Tensor]]) -> Graph:
    """Batch graphs of several molecules (sizes may differ) into one graph dict.

    Atom- and pair-indexed tensors are concatenated; indices are shifted so that
    :data:`hamnet.graph_keys.PAIR_INDEX` holds global atom ids and
    :data:`hamnet.graph_keys.PAIR_REVERSE` global pair rows. Targets must be present in all
    graphs or in none.
    """
    graphs = list(graphs)
    if not graphs:
        raise GraphError("cannot collate an empty list of graphs")
    known = set(GK.INPUT_KEYS) | set(GK.TARGET_KEYS) | set(GK.SPECTRAL_KEYS)
    for i, g in enumerate(graphs):
        missing = [k for k in GK.INPUT_KEYS if k not in g]
        extra = sorted(set(g) - known)
        if missing or extra:
            raise GraphError(
                f"graph {i} cannot be batched: missing keys {missing}, unknown keys {extra} "
                "(keys are defined in hamnet.graph_keys)"
            )
    for k in GK.TARGET_KEYS + GK.SPECTRAL_KEYS:
        have = [k in g for g in graphs]
        if any(have) and not all(have):
            raise GraphError(f"key {k!r} is present in some graphs of the batch but not all")
    n_atoms = [int(g[GK.Z].shape[0]) for g in graphs]
    n_pairs = [int(g[GK.PAIR_INDEX].shape[1]) for g in graphs]
    atom_off = np.concatenate([[0], np.cumsum(n_atoms)])
    pair_off = np.concatenate([[0], np.cumsum(n_pairs)])
    out: Graph = {}
    for k in GK.ATOM_KEYS + GK.PAIR_KEYS:
        if k in graphs[0]:
            out[k] = torch.cat([g[k] for g in graphs], dim=0)
    out[GK.BATCH] = torch.repeat_interleave(
        torch.arange(len(graphs)), torch.tensor(n_atoms, dtype=torch.long)
    )
    out[GK.PTR] = torch.from_numpy(atom_off.astype(np.int64))
    out[GK.PAIR_PTR] = torch.from_numpy(pair_off.astype(np.int64))
    out[GK.PAIR_INDEX] = torch.cat(
        [g[GK.PAIR_INDEX] + int(atom_off[m]) for m, g in enumerate(graphs)], dim=1
    )
    out[GK.PAIR_REVERSE] = torch.cat(
        [g[GK.PAIR_REVERSE] + int(pair_off[m]) for m, g in enumerate(graphs)], dim=0
    )
    if GK.AO_SRC in graphs[0]:
        out.update(_collate_ao_maps(graphs, atom_off, pair_off))
    return out


def _collate_ao_maps(graphs: Sequence[Mapping[str, torch.Tensor]], atom_off, pair_off) -> dict:
    """Batched :data:`~hamnet.graph_keys.NAO`, ``NOCC``, ``AO_SRC``, ``AO_DST`` of one-molecule graphs.

    A graph's ``AO_SRC`` points into its own ``concat([diag, offdiag])``; in the batch its
    diagonal rows move to ``atom_off[m] + row`` and its off-diagonal rows behind all
    ``n_atoms`` diagonal blocks, to ``n_atoms + pair_off[m] + (row - n_atoms_m)``.
    """
    n2 = int(graphs[0][GK.LOWDIN_DIAG].shape[-1]) ** 2
    n_atoms_all = int(atom_off[-1])
    nao = torch.cat([g[GK.NAO] for g in graphs])
    if len(nao) != len(graphs):
        raise GraphError("graphs with AO index maps must each hold one molecule to be batched")
    nmax = int(nao.max())
    src, dst = [], []
    for m, g in enumerate(graphs):
        n_at = int(g[GK.Z].shape[0])
        row, within = g[GK.AO_SRC] // n2, g[GK.AO_SRC] % n2
        row = torch.where(row < n_at, row + int(atom_off[m]), row - n_at + n_atoms_all + int(pair_off[m]))
        src.append(row * n2 + within)
        n = int(g[GK.NAO][0])
        mu, nu = g[GK.AO_DST] // n, g[GK.AO_DST] % n
        dst.append(m * nmax * nmax + mu * nmax + nu)
    return {GK.NAO: nao, GK.NOCC: torch.cat([g[GK.NOCC] for g in graphs]),
            GK.AO_SRC: torch.cat(src), GK.AO_DST: torch.cat(dst)}


def to_device(batch: Mapping[str, torch.Tensor], device) -> Graph:
    """The same graph dict with every tensor moved to ``device``."""
    return {k: v.to(device) for k, v in batch.items()}


def cutoff_edges(pos: torch.Tensor, pair_index: torch.Tensor, cutoff: float):
    """Message-passing edges: the ordered pairs closer than ``cutoff`` Angstrom.

    Parameters
    ----------
    pos : (n_atoms, 3) float, Angstrom
    pair_index : (2, n_pairs) int64
    cutoff : float, Angstrom

    Returns
    -------
    edge_index : (2, n_edges) int64
        ``(sender, receiver)``: messages flow from ``edge_index[0]`` to ``edge_index[1]``.
    edge_vec : (n_edges, 3) float
        ``pos[sender] - pos[receiver]``: from the receiving atom to its neighbour, Angstrom.
    edge_len : (n_edges,) float, Angstrom
    """
    vec = pos[pair_index[0]] - pos[pair_index[1]]  # [n_pairs, 3]
    length = vec.norm(dim=-1)  # [n_pairs]
    keep = length < cutoff
    return pair_index[:, keep], vec[keep], length[keep]
