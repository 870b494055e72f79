"""The six benchmark recipes: what is computed, on which geometries, split how.

Each :class:`Recipe` names its level of theory (:class:`~data_tools.label.SCFSettings`),
how geometries are generated (:func:`geometries`), how the finished set is split
(:func:`splits`), and documents its provenance and its deviations from the published
set; both texts are copied into the metadata of every dataset made from it. Measured
seconds per structure on the development machine are in ``benchmarks/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from data_tools import qm9
from data_tools import splits as S
from data_tools.geometry import Geometry, GeometryError, au_time_fs, embed_smiles, md_frames
from data_tools.label import SCFSettings
from data_tools.qm9 import QM9_SIZE
from hamnet.errors import HamnetError


class RecipeError(HamnetError, ValueError):
    """Unknown recipe or a request a recipe cannot fulfil."""


@dataclass(frozen=True)
class MDSettings:
    """Molecular dynamics that samples the frames (positions in Angstrom)."""

    temperature_K: float
    timestep_fs: float
    equil_steps: int
    stride: int  # steps between stored frames
    thermostat: str = "langevin"  # "langevin" (NVT) or "nve"


@dataclass(frozen=True)
class Recipe:
    """A benchmark set: level of theory, geometry generator, splits, provenance.

    Attributes
    ----------
    kind : {"md17", "qh9-stable", "qh9-dynamic"}
        Selects the geometry generator and the splits.
    smiles : tuple of str or None
        The molecules, embedded with RDKit; ``None`` (the ``qh9-*`` recipes) means QM9's
        molecules at QM9's geometries (:mod:`data_tools.qm9`), in the stratified
        :func:`data_tools.qm9.priority_order`, so ``--n N`` labels the first ``N``.
    qm9_ids : tuple of int or None
        Label exactly these QM9 indices (``dsgdb9nsd_XXXXXX``), in this order, instead
        of the first ``n`` of the priority order (``hamnet data make --ids``).
    md : MDSettings or None
        Dynamics for ``md17`` and ``qh9-dynamic``.
    frames_per_molecule : int
        Frames of each trajectory (``qh9-dynamic``).
    """

    name: str
    kind: str
    settings: SCFSettings
    provenance: str
    deviations: str
    smiles: Optional[tuple[str, ...]] = None
    md: Optional[MDSettings] = None
    frames_per_molecule: int = 1
    seed: int = 0
    md17_name: str = ""
    qm9_ids: Optional[tuple[int, ...]] = None

    @property
    def uses_qm9(self) -> bool:
        """Molecules and starting geometries come from QM9 (qm9pack)."""
        return self.smiles is None

    def n_molecules(self) -> int:
        if not self.uses_qm9:
            return len(self.smiles)
        return len(self.qm9_ids) if self.qm9_ids is not None else QM9_SIZE

    def max_structures(self) -> Optional[int]:
        """Largest ``n`` this recipe can make (``None``: unbounded)."""
        if self.kind == "md17":
            return None
        per_mol = self.frames_per_molecule if self.kind == "qh9-dynamic" else 1
        return self.n_molecules() * per_mol

    def extendable(self) -> bool:
        """A request for more structures keeps the first ``n`` (the store can grow)."""
        return self.kind == "qh9-stable" and self.uses_qm9 and self.qm9_ids is None

    def describe(self) -> dict:
        """Parameters that define the geometries (stored in the metadata)."""
        out = {"kind": self.kind, "seed": self.seed, "settings": vars(self.settings).copy()}
        if self.md is not None:
            out["md"] = vars(self.md).copy()
        if self.kind == "md17":
            out["smiles"] = list(self.smiles)
        elif self.uses_qm9:
            out["molecules"] = "QM9 (qm9pack), QM9 geometries"
            out["order"] = (
                "explicit QM9 ids" if self.qm9_ids is not None
                else f"data_tools.qm9.priority_order(seed={self.seed})"
            )
            if self.qm9_ids is not None:
                out["qm9_ids"] = list(self.qm9_ids)
            out["n_molecules_available"] = self.n_molecules()
        else:
            out["molecules"] = list(self.smiles)
            out["n_molecules_available"] = self.n_molecules()
        if self.kind == "qh9-dynamic":
            out["frames_per_molecule"] = self.frames_per_molecule
        return out


def geometries(
    recipe: Recipe, n: int, progress: Optional[Callable[[int], None]] = None, calculator=None
) -> list[Geometry]:
    """The first ``n`` geometries of ``recipe`` (deterministic in ``recipe.seed``).

    A molecule RDKit cannot embed or whose dynamics fail is skipped (the next one is
    used), so the list is the same on every run. QM9 structures carry their QM9 row
    (QH9's record index) as ``group`` and their QM9 name as ``source_id``.
    """
    if recipe.kind == "md17":
        Z, pos = embed_smiles(recipe.smiles[0], recipe.seed)
        md = recipe.md
        frames = md_frames(
            Z, pos, n, seed=recipe.seed, temperature_K=md.temperature_K,
            timestep_fs=md.timestep_fs, equil_steps=md.equil_steps, stride=md.stride,
            thermostat=md.thermostat, calculator=calculator, progress=progress,
        )
        return [Geometry(Z, f, f"{recipe.name}/frame/{i:06d}", 0) for i, f in enumerate(frames)]
    try:
        return _molecule_geometries(recipe, n, progress, calculator)
    except qm9.QM9Error as exc:
        raise RecipeError(str(exc)) from None


def _molecule_geometries(recipe, n, progress, calculator) -> list[Geometry]:
    out: list[Geometry] = []
    for k, name, start in _starting_structures(recipe, n):
        if len(out) >= n:
            break
        take = min(recipe.frames_per_molecule if recipe.kind == "qh9-dynamic" else 1, n - len(out))
        try:
            Z, pos = start() if callable(start) else start
            if recipe.kind == "qh9-stable":
                out.append(Geometry(Z, pos, name, k))
            else:
                md = recipe.md
                frames = md_frames(
                    Z, pos, take, seed=recipe.seed + k, temperature_K=md.temperature_K,
                    timestep_fs=md.timestep_fs, equil_steps=md.equil_steps, stride=md.stride,
                    thermostat=md.thermostat, calculator=calculator,
                )
                out += [Geometry(Z, f, f"{name}/frame/{j:03d}", k) for j, f in enumerate(frames)]
        except GeometryError:
            continue  # deterministic: the same molecule is skipped on every run
        if progress is not None:
            progress(take)
    if len(out) < n:
        raise RecipeError(
            f"recipe {recipe.name!r} could generate only {len(out)} of the {n} structures "
            "requested (its molecule list is exhausted)"
        )
    return out


def _starting_structures(recipe: Recipe, n: int):
    """Yield ``(group, name, (Z, pos) or a callable giving it)`` per molecule, in order."""
    if not recipe.uses_qm9:
        for k, smi in enumerate(recipe.smiles):
            yield k, f"smiles/{k:05d}/{smi}", (lambda smi=smi, k=k: embed_smiles(smi, recipe.seed + k))
        return
    rows = qm9_rows(recipe)
    per_mol = recipe.frames_per_molecule if recipe.kind == "qh9-dynamic" else 1
    ids = qm9.qm9_table().qm9_id
    lo, chunk = 0, -(-n // per_mol) + 8  # molecules needed, plus spares for skipped ones
    while lo < len(rows):
        part = rows[lo : lo + chunk]
        geoms = qm9.qm9_geometries(part)
        for row in part:
            yield int(row), qm9.source_id(ids[row]), geoms[int(row)]
        lo, chunk = lo + len(part), max(chunk, 64)


def qm9_rows(recipe: Recipe) -> np.ndarray:
    """QM9 rows (QH9 record indices) of the recipe's molecules, in labeling order."""
    try:
        table = qm9.qm9_table()
    except qm9.QM9Error as exc:
        raise RecipeError(str(exc)) from None
    if recipe.qm9_ids is None:
        return qm9.priority_order(table.n_heavy, seed=recipe.seed)
    rows = np.searchsorted(table.qm9_id, np.asarray(recipe.qm9_ids, dtype=np.int64))
    rows = np.minimum(rows, len(table) - 1)
    bad = [i for i, r in zip(recipe.qm9_ids, rows) if table.qm9_id[r] != i]
    if bad:
        raise RecipeError(
            f"QM9 ids {bad[:5]} are not in QM9's 130,831 characterized molecules "
            "(ids are the numbers of dsgdb9nsd_XXXXXX, 1 to 133885)"
        )
    if len(set(recipe.qm9_ids)) != len(recipe.qm9_ids):
        raise RecipeError("--ids lists a QM9 id more than once")
    return rows.astype(np.int64)


def splits(recipe: Recipe, n_atoms: Sequence[int], groups: Sequence[int]) -> dict:
    """Named splits of the stored records (``n_atoms``/``groups`` per record, in order)."""
    n = len(n_atoms)
    if recipe.kind == "md17":
        return {"qhnet": S.md17_split(n, recipe.md17_name)}
    if recipe.kind == "qh9-stable":
        if recipe.uses_qm9:  # QH9's split of all 130,831 molecules, restricted to these
            full = S.random_split(QM9_SIZE)
            return {"random": S.restrict(full, groups), "size_ood": S.size_ood_split(n_atoms)}
        return {"random": S.random_split(n), "size_ood": S.size_ood_split(n_atoms)}
    return {"geometry": S.geometry_split(groups), "mol": S.mol_split(groups)}


# --------------------------------------------------------------------------------------
# The six recipes
# --------------------------------------------------------------------------------------

_MD17_PROVENANCE = (
    "SchNOrb MD17 Hamiltonians (Schuett, Gastegger, Tkatchenko, Mueller, Maurer, Nat. "
    "Commun. 10, 5024 (2019)): ORCA PBE/def2-SVP Fock and overlap matrices of "
    "molecular-dynamics geometries of {mol}, published as schnorb_hamiltonian_{file}.db "
    "(ORCA AO order). Splits as in QHNet (Yu et al., ICML 2023): RandomState(42) "
    "permutation, {tr} train / {va} val, the rest test."
)
_MD17_DEVIATIONS = (
    "Geometries: one GFN2-xTB (tblite) Langevin trajectory at 500 K (0.5 fs steps, "
    "friction 0.01/fs, 500 equilibration steps, a frame every 20 steps = 10 fs) started "
    "from an RDKit ETKDG/MMFF94 structure, instead of DFT molecular dynamics. Labels: "
    "PySCF RKS PBE/def2-SVP, grids.level 3, conv_tol 1e-10, conv_tol_grad 1e-7, no "
    "density fitting, F = mf.get_fock() at the converged density, instead of ORCA's grid and its "
    "last-iteration Fock matrix. Energies are total energies (SchNOrb subtracts a mean). "
    "Split counts are scaled by n/{total} when n <= {trva}."
)
_MD17 = {
    # name: (SMILES, published file name, display)
    "water": ("O", "water", "water"),
    "ethanol": ("CCO", "ethanol_dft", "ethanol"),
    "malondialdehyde": ("O=CCC=O", "malondialdehyde", "malondialdehyde"),
    "uracil": ("O=C1C=CNC(=O)N1", "uracil", "uracil"),
}
_MD17_MD = MDSettings(temperature_K=500.0, timestep_fs=0.5, equil_steps=500, stride=20)


def _md17(name: str) -> Recipe:
    smi, file, mol = _MD17[name]
    tr, va, total = S.MD17_COUNTS[name]
    return Recipe(
        name=f"md17-{name}",
        kind="md17",
        settings=SCFSettings(xc="pbe", basis="def2-svp", grid_level=3, conv_tol=1e-10),
        provenance=_MD17_PROVENANCE.format(mol=mol, file=file, tr=tr, va=va),
        deviations=_MD17_DEVIATIONS.format(total=total, trva=tr + va),
        smiles=(smi,),
        md=_MD17_MD,
        seed=17,
        md17_name=name,
    )


_QH9_B3LYP_NOTE = (
    " Functional: 'b3lyp5' (B3LYP with VWN5 correlation). QH9-stable and QH9-dynamic-300k "
    "were computed with PySCF 2.2.1, whose 'b3lyp' was that VWN5 variant; since PySCF 2.3 "
    "'b3lyp' means the VWN-RPA variant (pyscf/pyscf#1480, divelab/AIRS#11), which differs by "
    "about 1e-3 Ha in F. QH9-dynamic-100k used PySCF 2.3.0, i.e. today's 'b3lyp'."
)

QH9_STABLE = Recipe(
    name="qh9-stable",
    kind="qh9-stable",
    settings=SCFSettings(xc="b3lyp5", basis="def2-svp", grid_level=3, conv_tol=1e-10),
    provenance=(
        "QH9-stable (Yu et al., NeurIPS 2023 Datasets and Benchmarks): 130,831 QM9 molecules "
        "at their QM9 geometries, PySCF B3LYP/def2-SVP with the default grid (level 3), "
        "Ham = mf.get_fock(), file QH9Stable.db. Splits 'random' (RandomState(43), "
        "80/10/10) and 'size_ood' (train <= 20 atoms, val 21-22, test >= 23)."
    ),
    deviations=(
        "Molecules and geometries: QM9's own (qm9pack, B3LYP/6-31G(2df,p) optima, the same "
        "130,831 molecules in the same order), but only a subset is labeled: a request for n "
        "takes the first n of data_tools.qm9.priority_order (every molecule with <= 5 heavy "
        "atoms, then 6/7/8/9 heavy atoms interleaved as 6,7,8,9,6,9, each in seeded random "
        "order), or the QM9 ids given with --ids. The 'random' split is QH9's over all "
        "130,831 molecules, restricted to the labeled ones. conv_tol 1e-10 and "
        "conv_tol_grad 1e-7 instead of PySCF's defaults 1e-9 and sqrt(1e-9)."
        + _QH9_B3LYP_NOTE
    ),
    seed=9,
)

QH9_DYNAMIC = Recipe(
    name="qh9-dynamic",
    kind="qh9-dynamic",
    settings=SCFSettings(xc="b3lyp5", basis="def2-svp", grid_level=3, conv_tol=1e-10),
    provenance=(
        "QH9-dynamic (Yu et al., NeurIPS 2023 Datasets and Benchmarks): for each of 999 "
        "(100k) or 2,998 (300k) QM9 molecules a 100-step PySCF B3LYP/def2-SVP NVE "
        "trajectory (300 K Maxwell-Boltzmann start, dt = 50 a.u.), every step labeled "
        "with mf.get_fock(); files QH9Dynamic_*.db, positions in Bohr. Splits 'geometry' "
        "(80/10/10 of each trajectory's frames) and 'mol' (80/10/10 of the molecules)."
    ),
    deviations=(
        "Dynamics on GFN2-xTB (tblite) forces, not B3LYP; 10 frames per molecule, one every "
        "10 steps of 50 a.u. (about 12 fs apart) instead of 100 consecutive steps. "
        "Molecules: QM9's (qm9pack), started from their QM9 geometries, in the order of "
        "data_tools.qm9.priority_order. Positions stored in Angstrom. conv_tol 1e-10, "
        "conv_tol_grad 1e-7."
        + _QH9_B3LYP_NOTE
    ),
    md=MDSettings(
        temperature_K=300.0, timestep_fs=au_time_fs(50.0), equil_steps=0, stride=10,
        thermostat="nve",
    ),
    frames_per_molecule=10,
    seed=99,
)

RECIPES: dict[str, Recipe] = {
    r.name: r for r in [_md17(m) for m in _MD17] + [QH9_STABLE, QH9_DYNAMIC]
}


def get_recipe(name: str) -> Recipe:
    """Recipe by name, or :class:`RecipeError` listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(
            f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES))}"
        ) from None


def check_request(recipe: Recipe, n: int) -> None:
    """Raise :class:`RecipeError` unless ``recipe`` can make ``n`` structures."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise RecipeError(f"--n must be a positive integer, got {n!r}")
    most = recipe.max_structures()
    if most is not None and n > most:
        raise RecipeError(
            f"recipe {recipe.name!r} can make at most {most} structures "
            f"({recipe.n_molecules()} molecules x {recipe.frames_per_molecule} frames); "
            f"got --n {n}"
        )
