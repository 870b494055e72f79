"""Geometries for the recipes: RDKit conformers and GFN2-xTB molecular dynamics.

Everything here is deterministic given its seed: RDKit ETKDG embedding with a fixed
``randomSeed`` followed by an MMFF94 relaxation, and ASE molecular dynamics driven by a
``numpy`` generator seeded per trajectory. Positions are in Angstrom. The MD force
provider is injectable (``calculator``), GFN2-xTB through ``tblite.ase.TBLite`` by
default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from pyscf.data import nist

from hamnet.errors import HamnetError


class GeometryError(HamnetError, RuntimeError):
    """A geometry could not be generated (bad SMILES, failed embedding or MD)."""


@dataclass(frozen=True)
class Geometry:
    """One structure to label.

    Attributes
    ----------
    Z : (n_atoms,) int64
    pos : (n_atoms, 3) float64, Angstrom
    source_id : str
        Stored with the record (molecule, frame).
    group : int
        Molecule index; frames of one trajectory share it (for per-molecule splits).
    """

    Z: np.ndarray
    pos: np.ndarray
    source_id: str
    group: int = 0
    info: dict = field(default_factory=dict, compare=False)


def embed_smiles(smiles: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3D structure of a SMILES: ETKDGv3 (``randomSeed=seed``) + MMFF94 relaxation.

    Returns
    -------
    Z : (n_atoms,) int64
        Heavy atoms in SMILES order, then hydrogens.
    pos : (n_atoms, 3) float64, Angstrom
    """
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise GeometryError(f"invalid SMILES {smiles!r}")
    if Chem.GetFormalCharge(mol) != 0:
        raise GeometryError(f"{smiles!r} is charged; recipes label neutral molecules only")
    mol = Chem.AddHs(mol)
    Z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if Z.sum() % 2:
        raise GeometryError(f"{smiles!r} has an odd number of electrons (not closed shell)")
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise GeometryError(f"RDKit could not embed {smiles!r} in 3D (seed {seed})")
    if len(Z) > 1:
        if not AllChem.MMFFHasAllMoleculeParams(mol):
            raise GeometryError(f"MMFF94 has no parameters for {smiles!r}")
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    pos = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    return Z, pos


def xtb_calculator():
    """GFN2-xTB ASE calculator (tblite), quiet, on one OpenMP thread."""
    from tblite.ase import TBLite

    _one_openmp_thread()
    return TBLite(method="GFN2-xTB", verbosity=0)


def _one_openmp_thread() -> None:
    # tblite runs on the system libgomp, whose default is one thread per core. For
    # molecules of <= 30 atoms threads only add overhead, and on a shared machine
    # they oversubscribe the cores (measured: 15x slower on 2 busy cores).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")  # every OpenMP runtime loaded in this process


def _thermalize(atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K``, zero total momentum."""
    from ase import units

    masses = atoms.get_masses()[:, None]  # [n_atoms, 1], amu
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * temperature_K)
    p -= masses * p.sum(axis=0) / masses.sum()
    atoms.set_momenta(p)


def md_frames(
    Z,
    pos,
    n_frames: int,
    *,
    seed: int,
    temperature_K: float,
    timestep_fs: float,
    equil_steps: int,
    stride: int,
    thermostat: str = "langevin",
    friction_per_fs: float = 0.01,
    calculator: Optional[Callable] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> np.ndarray:
    """Sample frames of a molecular-dynamics trajectory.

    The first frame is taken after ``equil_steps`` steps, then one every ``stride``
    steps. ``thermostat="langevin"`` is NVT (ASE ``Langevin``, friction
    ``friction_per_fs``); ``"nve"`` is velocity Verlet from Maxwell-Boltzmann
    momenta at ``temperature_K``.

    Returns
    -------
    (n_frames, n_atoms, 3) float64, Angstrom
    """
    from ase import Atoms, units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    if n_frames < 0 or stride < 1 or equil_steps < 0:
        raise ValueError("n_frames >= 0, stride >= 1 and equil_steps >= 0 are required")
    atoms = Atoms(numbers=np.asarray(Z), positions=np.asarray(pos, dtype=np.float64))
    atoms.calc = (calculator or xtb_calculator)()
    rng = np.random.default_rng(seed)
    _thermalize(atoms, temperature_K, rng)
    dt = timestep_fs * units.fs
    if thermostat == "langevin":
        dyn = Langevin(
            atoms, timestep=dt, temperature_K=temperature_K,
            friction=friction_per_fs / units.fs, fixcm=False, rng=rng,
        )
    elif thermostat == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        raise ValueError(f"unknown thermostat {thermostat!r}; use 'langevin' or 'nve'")
    frames = np.empty((n_frames, len(atoms), 3))
    try:
        if equil_steps:
            dyn.run(equil_steps)
        for i in range(n_frames):
            if i:
                dyn.run(stride)
            frames[i] = atoms.get_positions()
            if progress is not None:
                progress(1)
    except Exception as exc:
        raise GeometryError(f"molecular dynamics failed: {type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(frames)):
        raise GeometryError("molecular dynamics produced non-finite positions")
    return frames


def au_time_fs(t_au: float) -> float:
    """Atomic units of time to femtoseconds (``hbar / E_h``, from ``pyscf.data.nist``)."""
    return float(t_au) * nist.HBAR / nist.HARTREE2J * 1e15
