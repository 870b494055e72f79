"""Orbital layouts of elements and molecules: padded atom blocks, split and assemble.

* A *radial function* is one contracted function of one PySCF shell. A PySCF shell with
  ``nctr`` contractions gives ``nctr`` radial functions of the same ``l``. Within an atom,
  AOs are ordered radial function by radial function, ``m`` fastest, exactly as PySCF
  orders them (``p`` as ``x, y, z``; ``l >= 2`` as PySCF's real spherical ``m = -l..l``).
* An atom's orbitals are embedded in a *padded* layout shared by all elements of an
  :class:`OrbitalBasis` (for each ``l``, as many slots as the element with the most
  radial functions of that ``l``). Blocks of any atom pair are then
  ``(n_pad, n_pad)`` tensors with a mask, and map linearly and orthonormally to the
  irreps :attr:`OrbitalBasis.block_irreps`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np
import torch
from e3nn import o3
from pyscf import gto

from hamnet.basis.clebsch_gordan import _block_matrix
from hamnet.basis.elements import BasisError, atomic_number, symbol
from hamnet.basis.wigner import _check_spherical, wigner_D_pyscf

__all__ = ["OrbitalBasis", "MoleculeLayout"]

BasisSpec = Union[str, dict]


def _element_radial_ls(basis: BasisSpec, z: int) -> tuple[int, ...]:
    """``l`` of each radial function of element ``z`` in ``basis``, PySCF order."""
    sym = symbol(z)
    try:
        mol = gto.M(atom=f"{sym} 0 0 0", basis=basis, spin=None, verbose=0)
    except Exception as exc:
        msg = str(exc)
        if "Unknown basis" in msg:
            raise BasisError(f"unknown basis {basis!r}: PySCF does not know this name") from exc
        raise BasisError(f"basis {basis!r} has no functions for element {sym} (Z={z})") from exc
    return _mol_atom_ls(mol, 0)


def _mol_atom_ls(mol: gto.Mole, ia: int) -> tuple[int, ...]:
    ls = []
    for ib in mol.atom_shell_ids(ia):
        ls += [int(mol.bas_angular(ib))] * int(mol.bas_nctr(ib))
    if not ls:
        raise BasisError(f"atom {ia} ({mol.atomsymbol(ia)}) has no basis functions")
    return tuple(ls)


@dataclass(frozen=True)
class MoleculeLayout:
    """AO bookkeeping of one molecule, all arrays in PySCF AO order.

    Attributes
    ----------
    Z : (n_atoms,) int
    ao_atom, ao_radial, ao_l, ao_m : (nao,) int
        For each AO: its atom, its radial function within the atom, ``l``, and ``m``
        (``-l..l`` in PySCF order; for ``p`` PySCF's ``x, y, z`` are ``m = 1, -1, 0``).
    atom_offsets : (n_atoms + 1,) int
        AO range of atom ``i`` is ``atom_offsets[i]:atom_offsets[i+1]``.
    gather : (nao * nao,) int
        Position of AO element ``(mu, nu)`` in the stacked ``(n_atoms**2 * n_pad**2)``
        flattened pair blocks; pair ``(i, j)`` is block ``i * n_atoms + j``.
    """

    Z: np.ndarray
    ao_atom: np.ndarray
    ao_radial: np.ndarray
    ao_l: np.ndarray
    ao_m: np.ndarray
    atom_offsets: np.ndarray
    gather: np.ndarray

    @property
    def nao(self) -> int:
        return int(self.atom_offsets[-1])

    @property
    def n_atoms(self) -> int:
        return int(len(self.Z))


_P_M = (1, -1, 0)  # PySCF orders p as x, y, z


class OrbitalBasis:
    """Orbital layout of a set of elements in one PySCF basis.

    Parameters
    ----------
    basis : str or dict
        Any basis PySCF knows (``"def2-svp"``, ``"cc-pvtz"``, or a per-element dict).
    elements : iterable of int or str
        The elements this basis must cover; each must exist in ``basis``.

    Attributes
    ----------
    elements : tuple of int
        Sorted atomic numbers.
    radial_ls : dict int -> tuple of int
        ``l`` of each radial function per element, in PySCF order.
    pad_ls : tuple of int
        ``l`` of each slot of the padded per-atom layout (sorted by ``l``).
    n_pad : int
        AOs of the padded layout.
    block_irreps : e3nn.o3.Irreps
        Irreps of one padded ``(n_pad, n_pad)`` pair block (sorted, simplified).
    """

    def __init__(self, basis: BasisSpec, elements: Iterable[Union[int, str]]):
        zs = sorted({atomic_number(e) for e in elements})
        if not zs:
            raise BasisError("an OrbitalBasis needs at least one element")
        self.basis = basis.lower() if isinstance(basis, str) else basis
        self.elements = tuple(zs)
        self.radial_ls = {z: _element_radial_ls(basis, z) for z in zs}
        self._setup()

    @classmethod
    def from_mole(cls, mol: gto.Mole) -> "OrbitalBasis":
        """Layout of the elements and basis of a built PySCF molecule."""
        _check_spherical(mol)
        self = cls.__new__(cls)
        self.basis = mol.basis.lower() if isinstance(mol.basis, str) else mol.basis
        radial_ls: dict[int, tuple[int, ...]] = {}
        for ia in range(mol.natm):
            z = int(mol.atom_charge(ia) + _ecp_core(mol, ia))
            ls = _mol_atom_ls(mol, ia)
            if radial_ls.setdefault(z, ls) != ls:
                raise BasisError(
                    f"atoms of element {symbol(z)} carry different basis sets in this "
                    "Mole; hamnet needs one basis per element"
                )
        self.elements = tuple(sorted(radial_ls))
        self.radial_ls = {z: radial_ls[z] for z in self.elements}
        self._setup()
        return self

    # ---- derived layout -------------------------------------------------------------

    def _setup(self) -> None:
        lmax = max(max(ls) for ls in self.radial_ls.values())
        counts = [max(ls.count(l) for ls in self.radial_ls.values()) for l in range(lmax + 1)]
        self.lmax = lmax
        self.pad_ls = tuple(l for l in range(lmax + 1) for _ in range(counts[l]))
        slot_start = np.cumsum([0] + [2 * l + 1 for l in self.pad_ls])
        self.n_pad = int(slot_start[-1])
        first_slot = {l: self.pad_ls.index(l) for l in set(self.pad_ls)}
        # For each element: padded position of each of its AOs, in PySCF order.
        self.pad_index: dict[int, np.ndarray] = {}
        for z, ls in self.radial_ls.items():
            seen = {l: 0 for l in ls}
            idx = []
            for l in ls:
                s = first_slot[l] + seen[l]
                seen[l] += 1
                idx.extend(range(slot_start[s], slot_start[s] + 2 * l + 1))
            self.pad_index[z] = np.asarray(idx, dtype=np.int64)
        # Slot-pair id of every entry of a padded block (for shell-pair traces).
        slot_of = np.repeat(np.arange(len(self.pad_ls)), [2 * l + 1 for l in self.pad_ls])  # [n_pad]
        self.slot_pair_id = slot_of[:, None] * len(self.pad_ls) + slot_of[None, :]
        self._build_block_map(slot_start)
        self._layout_cache: dict[tuple, MoleculeLayout] = {}

    def _build_block_map(self, slot_start: np.ndarray) -> None:
        """Orthonormal ``U`` [n_pad*n_pad, dim]: vec(padded block) = U @ irreps."""
        n = self.n_pad
        entries = []  # (L, parity, column block [n*n, 2L+1])
        for i, li in enumerate(self.pad_ls):
            for j, lj in enumerate(self.pad_ls):
                u = _block_matrix(li, lj).reshape(2 * li + 1, 2 * lj + 1, -1)
                col = 0
                for L in range(abs(li - lj), li + lj + 1):
                    full = np.zeros((n, n, 2 * L + 1))
                    full[
                        slot_start[i] : slot_start[i + 1], slot_start[j] : slot_start[j + 1]
                    ] = u[:, :, col : col + 2 * L + 1]
                    col += 2 * L + 1
                    p = (-1) ** (li + lj)
                    entries.append((L, -p, i, j, full.reshape(n * n, 2 * L + 1)))
        # Group by (L, parity) so that block_irreps is short after simplify().
        entries.sort(key=lambda e: (e[0], e[1]))
        self.block_irreps = o3.Irreps([(1, (e[0], -e[1])) for e in entries]).simplify()
        self._block_u = np.concatenate([e[4] for e in entries], axis=1)  # [n*n, dim]
        # Slot pair that each irreps component belongs to (for traces from irreps).
        self.irreps_slot_pair = np.concatenate(
            [np.full(2 * e[0] + 1, e[2] * len(self.pad_ls) + e[3]) for e in entries]
        )

    @property
    def n_slot_pairs(self) -> int:
        return len(self.pad_ls) ** 2

    def nao(self, element: Union[int, str]) -> int:
        """Number of AOs of one atom of ``element``."""
        return int(len(self.pad_index[self._z(element)]))

    def _z(self, element) -> int:
        z = atomic_number(element)
        if z not in self.radial_ls:
            have = ", ".join(symbol(e) for e in self.elements)
            raise BasisError(
                f"element {symbol(z)} is not in this basis layout (built for {have})"
            )
        return z

    def block_mask(self, zi, zj) -> np.ndarray:
        """Bool ``(n_pad, n_pad)``: entries of a padded block that exist for ``(zi, zj)``."""
        m = np.zeros((self.n_pad, self.n_pad), dtype=bool)
        m[np.ix_(self.pad_index[self._z(zi)], self.pad_index[self._z(zj)])] = True
        return m

    def padded_rotation(self, R) -> np.ndarray:
        """``(n_pad, n_pad)`` rotation of the padded per-atom layout (block diagonal over slots).

        It is the same for every element: for positions ``x -> R x`` a padded block
        transforms as ``B_ij -> D B_ij D^T`` (padding stays zero), and an element's AO
        rotation is ``D[pad_index[z]][:, pad_index[z]]``.
        """
        D = np.zeros((self.n_pad, self.n_pad))
        blocks, p0 = {}, 0
        for l in self.pad_ls:
            if l not in blocks:
                blocks[l] = wigner_D_pyscf(l, R)
            D[p0 : p0 + 2 * l + 1, p0 : p0 + 2 * l + 1] = blocks[l]
            p0 += 2 * l + 1
        return D

    def ao_rotation(self, Z: Sequence[int], R) -> np.ndarray:
        """``(nao, nao)`` AO rotation of a molecule with atomic numbers ``Z`` (PySCF order);
        equal to :func:`ao_rotation` of its Mole, without building one."""
        Dp = self.padded_rotation(R)
        lay = self.layout(Z)
        D = np.zeros((lay.nao, lay.nao))
        for a, z in enumerate(lay.Z):
            idx = self.pad_index[self._z(z)]
            p0, p1 = lay.atom_offsets[a], lay.atom_offsets[a + 1]
            D[p0:p1, p0:p1] = Dp[np.ix_(idx, idx)]
        return D

    # ---- padded block <-> irreps ---------------------------------------------------

    def padded_to_irreps(self, blocks: torch.Tensor) -> torch.Tensor:
        """``(..., n_pad, n_pad)`` PySCF-order blocks -> ``(..., block_irreps.dim)``."""
        n = self.n_pad
        if blocks.shape[-2:] != (n, n):
            raise ValueError(f"expected padded blocks (..., {n}, {n}), got {tuple(blocks.shape)}")
        u = torch.as_tensor(self._block_u, dtype=blocks.dtype, device=blocks.device)
        return blocks.reshape(*blocks.shape[:-2], n * n) @ u

    def irreps_to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., block_irreps.dim)`` -> ``(..., n_pad, n_pad)`` PySCF-order blocks."""
        u = torch.as_tensor(self._block_u, dtype=x.dtype, device=x.device)
        if x.shape[-1] != u.shape[1]:
            raise ValueError(f"expected irreps of dim {u.shape[1]}, got {x.shape[-1]}")
        return (x @ u.T).reshape(*x.shape[:-1], self.n_pad, self.n_pad)

    # ---- molecules -------------------------------------------------------------------

    def layout(self, Z: Sequence[int]) -> MoleculeLayout:
        """AO bookkeeping of a molecule with atomic numbers ``Z`` (cached per pattern)."""
        key = tuple(int(z) for z in Z)
        if key in self._layout_cache:
            return self._layout_cache[key]
        if not key:
            raise BasisError("a molecule needs at least one atom")
        zs = [self._z(z) for z in key]
        n_at, n = len(zs), self.n_pad
        sizes = [len(self.pad_index[z]) for z in zs]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ao_atom = np.repeat(np.arange(n_at), sizes)
        ao_radial, ao_l, ao_m = [], [], []
        for z in zs:
            for k, l in enumerate(self.radial_ls[z]):
                ao_radial += [k] * (2 * l + 1)
                ao_l += [l] * (2 * l + 1)
                ao_m += list(_P_M) if l == 1 else list(range(-l, l + 1))
        pad_pos = np.concatenate([self.pad_index[z] for z in zs])  # [nao]
        # gather[mu, nu] = (atom(mu) * n_at + atom(nu)) * n^2 + pad(mu) * n + pad(nu)
        pair = ao_atom[:, None] * n_at + ao_atom[None, :]
        gather = pair * n * n + pad_pos[:, None] * n + pad_pos[None, :]
        lay = MoleculeLayout(
            Z=np.asarray(zs, dtype=np.int64),
            ao_atom=ao_atom,
            ao_radial=np.asarray(ao_radial, dtype=np.int64),
            ao_l=np.asarray(ao_l, dtype=np.int64),
            ao_m=np.asarray(ao_m, dtype=np.int64),
            atom_offsets=offsets,
            gather=gather.reshape(-1),
        )
        self._layout_cache[key] = lay
        return lay

    def split(self, F, Z: Sequence[int]):
        """Split a full ``(nao, nao)`` AO matrix into padded atom-pair blocks.

        Returns
        -------
        diag : (n_atoms, n_pad, n_pad)
            Blocks ``(i, i)``.
        offdiag : (n_atoms * (n_atoms - 1), n_pad, n_pad)
            Blocks ``(i, j)``, ``i != j``, in the order of :meth:`pair_index`.
        Zero where the padded layout has no orbital (see :meth:`block_mask`). Same array
        type (numpy or torch) and dtype as ``F``.
        """
        lay = self.layout(Z)
        is_torch = isinstance(F, torch.Tensor)
        if tuple(F.shape) != (lay.nao, lay.nao):
            raise ValueError(
                f"matrix of shape {tuple(F.shape)} does not match the molecule's "
                f"{lay.nao} AOs in basis {self.basis!r}"
            )
        n_at, n = lay.n_atoms, self.n_pad
        if is_torch:
            flat = F.new_zeros(n_at * n_at * n * n)
            flat[torch.from_numpy(lay.gather).to(F.device)] = F.reshape(-1)
        else:
            flat = np.zeros(n_at * n_at * n * n, dtype=np.asarray(F).dtype)
            flat[lay.gather] = np.asarray(F).reshape(-1)
        blocks = flat.reshape(n_at, n_at, n, n)
        ii, jj = self.pair_index(n_at)
        d = np.arange(n_at)
        return blocks[d, d], blocks[ii, jj]

    def assemble(self, diag, offdiag, Z: Sequence[int]):
        """Inverse of :meth:`split`: padded blocks -> ``(nao, nao)`` in PySCF AO order.

        Works on numpy arrays and (differentiably) on torch tensors. Padding entries
        are ignored. Symmetry is not imposed here.
        """
        lay = self.layout(Z)
        n_at, n = lay.n_atoms, self.n_pad
        if tuple(diag.shape) != (n_at, n, n) or tuple(offdiag.shape) != (n_at * (n_at - 1), n, n):
            raise ValueError(
                f"expected diag ({n_at}, {n}, {n}) and offdiag ({n_at * (n_at - 1)}, {n}, {n}), "
                f"got {tuple(diag.shape)} and {tuple(offdiag.shape)}"
            )
        pos = self.pair_positions(n_at)  # [n_at*n_at] block slot of each pair id
        if isinstance(diag, torch.Tensor):
            stacked = torch.cat([diag, offdiag], dim=0)[torch.from_numpy(pos).to(diag.device)]
            gather = torch.from_numpy(lay.gather).to(diag.device)
        else:
            stacked = np.concatenate([diag, offdiag], axis=0)[pos]
            gather = lay.gather
        return stacked.reshape(-1)[gather].reshape(lay.nao, lay.nao)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def pair_index(n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
        """Ordered pairs ``(i, j)``, ``i != j``, row-major: arrays ``(i, j)``."""
        ii, jj = np.nonzero(~np.eye(n_atoms, dtype=bool))
        return ii, jj

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def pair_positions(n_atoms: int) -> np.ndarray:
        """For pair id ``i * n_atoms + j``: its row in ``concat([diag, offdiag])``."""
        pos = np.empty(n_atoms * n_atoms, dtype=np.int64)
        d = np.arange(n_atoms)
        pos[d * n_atoms + d] = d
        ii, jj = OrbitalBasis.pair_index(n_atoms)
        pos[ii * n_atoms + jj] = n_atoms + np.arange(len(ii))
        return pos

    def check_mole(self, mol: gto.Mole) -> None:
        """Raise :class:`BasisError` unless ``mol``'s AOs are exactly this layout's."""
        _check_spherical(mol)
        other = OrbitalBasis.from_mole(mol)
        for z, ls in other.radial_ls.items():
            if z not in self.radial_ls:
                self._z(z)
            if self.radial_ls[z] != ls:
                raise BasisError(
                    f"molecule's basis {mol.basis!r} differs from this layout's "
                    f"{self.basis!r} for element {symbol(z)}"
                )

    def __repr__(self) -> str:
        els = " ".join(symbol(z) for z in self.elements)
        return f"OrbitalBasis({self.basis!r}, elements=[{els}], n_pad={self.n_pad})"

    def describe(self) -> str:
        """Human-readable table of shells per element and the block irreps."""
        letters = "spdfghikl"
        lines = [repr(self)]
        for z, ls in self.radial_ls.items():
            shells = "".join(f"{ls.count(l)}{letters[l]}" for l in sorted(set(ls)))
            lines.append(f"  {symbol(z):>2}: {shells:<12} {len(self.pad_index[z])} AOs")
        lines.append(f"  block irreps: {self.block_irreps} (lmax of blocks {2 * self.lmax})")
        return "\n".join(lines)


def _ecp_core(mol: gto.Mole, ia: int) -> int:
    """Core electrons removed by an ECP on atom ``ia`` (0 without ECP)."""
    return int(mol.atom_nelec_core(ia)) if mol.has_ecp() else 0
