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

from data_tools import splits as S
from data_tools.geometry import Geometry, GeometryError, au_time_fs, embed_smiles, md_frames
from data_tools.label import SCFSettings
from data_tools.molecules import qm9like_smiles


class RecipeError(ValueError):
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
        The molecules; ``None`` means the enumerated QM9-like list
        (:func:`data_tools.molecules.qm9like_smiles`).
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

    def molecules(self) -> tuple[str, ...]:
        return self.smiles if self.smiles is not None else qm9like_smiles()

    def max_structures(self) -> Optional[int]:
        """Largest ``n`` this recipe can make (``None``: unbounded)."""
        if self.kind == "qh9-stable":
            return len(self.molecules())
        if self.kind == "qh9-dynamic":
            return len(self.molecules()) * self.frames_per_molecule
        return None

    def describe(self) -> dict:
        """Parameters that define the geometries (stored in the metadata)."""
        out = {"kind": self.kind, "seed": self.seed, "settings": vars(self.settings).copy()}
        if self.md is not None:
            out["md"] = vars(self.md).copy()
        if self.kind == "md17":
            out["smiles"] = list(self.molecules())
        else:
            mols = "enumerated QM9-like list" if self.smiles is None else list(self.smiles)
            out["molecules"] = mols
            out["n_molecules_available"] = len(self.molecules())
        if self.kind == "qh9-dynamic":
            out["frames_per_molecule"] = self.frames_per_molecule
        return out


def geometries(
    recipe: Recipe, n: int, progress: Optional[Callable[[int], None]] = None, calculator=None
) -> list[Geometry]:
    """The first ``n`` geometries of ``recipe`` (deterministic in ``recipe.seed``).

    A molecule RDKit cannot embed or whose dynamics fail is skipped (the next one is
    used), so the list is the same on every run.
    """
    mols = recipe.molecules()
    out: list[Geometry] = []
    if recipe.kind == "md17":
        Z, pos = embed_smiles(mols[0], recipe.seed)
        md = recipe.md
        frames = md_frames(
            Z, pos, n, seed=recipe.seed, temperature_K=md.temperature_K,
            timestep_fs=md.timestep_fs, equil_steps=md.equil_steps, stride=md.stride,
            thermostat=md.thermostat, calculator=calculator, progress=progress,
        )
        return [Geometry(Z, f, f"{recipe.name}/frame/{i:06d}", 0) for i, f in enumerate(frames)]
    per_mol = recipe.frames_per_molecule if recipe.kind == "qh9-dynamic" else 1
    for k, smi in enumerate(mols):
        if len(out) >= n:
            break
        take = min(per_mol, n - len(out))
        try:
            Z, pos = embed_smiles(smi, recipe.seed + k)
            if recipe.kind == "qh9-stable":
                out.append(Geometry(Z, pos, f"qm9like/{k:05d}/{smi}", k))
            else:
                md = recipe.md
                frames = md_frames(
                    Z, pos, take, seed=recipe.seed + k, temperature_K=md.temperature_K,
                    timestep_fs=md.timestep_fs, equil_steps=md.equil_steps, stride=md.stride,
                    thermostat=md.thermostat, calculator=calculator,
                )
                out += [
                    Geometry(Z, f, f"qm9like/{k:05d}/{smi}/frame/{j:03d}", k)
                    for j, f in enumerate(frames)
                ]
        except GeometryError:
            continue  # deterministic: the same molecule is skipped on every run
        if progress is not None and recipe.kind == "qh9-stable":
            progress(1)
        elif progress is not None:
            progress(take)
    if len(out) < n:
        raise RecipeError(
            f"recipe {recipe.name!r} could generate only {len(out)} of the {n} structures "
            "requested (its molecule list is exhausted)"
        )
    return out


def splits(recipe: Recipe, n_atoms: Sequence[int], groups: Sequence[int]) -> dict:
    """Named splits of the stored records (``n_atoms``/``groups`` per record, in order)."""
    n = len(n_atoms)
    if recipe.kind == "md17":
        return {"qhnet": S.md17_split(n, recipe.md17_name)}
    if recipe.kind == "qh9-stable":
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
    " PySCF's 'b3lyp' is libxc's B3LYP with VWN-RPA since PySCF 2.3; QH9 (2023) may have "
    "used an older PySCF whose 'b3lyp' used VWN5 (the metadata records xc_definition)."
)

QH9_STABLE = Recipe(
    name="qh9-stable",
    kind="qh9-stable",
    settings=SCFSettings(xc="b3lyp", basis="def2-svp", grid_level=3, conv_tol=1e-10),
    provenance=(
        "QH9-stable (Yu et al., NeurIPS 2023 Datasets and Benchmarks): 130,831 QM9 molecules "
        "at their QM9 geometries, PySCF B3LYP/def2-SVP with the default grid (level 3), "
        "Ham = mf.get_fock(), file QH9Stable.db. Splits 'random' (RandomState(43), "
        "80/10/10) and 'size_ood' (train <= 20 atoms, val 21-22, test >= 23)."
    ),
    deviations=(
        "Molecules: hamnet's enumerated QM9-like list (data_tools.molecules; H, C, N, O, F, "
        "<= 9 heavy atoms) instead of QM9. Geometries: RDKit ETKDGv3 + MMFF94, not "
        "B3LYP/6-31G(2df,p) optima. conv_tol 1e-10 and conv_tol_grad 1e-7 instead of "
        "PySCF's defaults 1e-9 and sqrt(1e-9)."
        + _QH9_B3LYP_NOTE
    ),
    seed=9,
)

QH9_DYNAMIC = Recipe(
    name="qh9-dynamic",
    kind="qh9-dynamic",
    settings=SCFSettings(xc="b3lyp", basis="def2-svp", grid_level=3, conv_tol=1e-10),
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
        "Molecules from hamnet's enumerated QM9-like list, started from RDKit "
        "ETKDGv3/MMFF94 structures. Positions stored in Angstrom. conv_tol 1e-10, "
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
            f"({len(recipe.molecules())} molecules x {recipe.frames_per_molecule} frames); "
            f"got --n {n}"
        )
