"""Keys of hamnet dataset records and metadata: the one place they are spelled.

Import as ``from hamnet.data import record_keys as RK``. (The keys of the network's graph
and batch dicts are :mod:`hamnet.graph_keys`, ``GK``; :data:`Z` and :data:`POS` are
defined there once and shared.)

A *record* is one labeled structure, a ``dict`` from these keys to numpy arrays
(or Python scalars for the scalar keys). Shapes and units at the line of each key.
Every matrix is in PySCF's AO order for the dataset's basis, so ``rec[F]`` is
directly comparable to ``mf.get_fock()``.
"""

from __future__ import annotations

# ---- record keys -----------------------------------------------------------------------
# Z (n_atoms,) int64 | atomic numbers; POS (n_atoms, 3) float64 | Cartesian positions, Angstrom:
# the same two keys as in graphs, defined once in hamnet.graph_keys.
from hamnet.graph_keys import POS, Z  # noqa: E402
F = "F"  # (nao, nao) float64 | Fock / Kohn-Sham matrix, Hartree, PySCF AO order
S = "S"  # (nao, nao) float64 | AO overlap (int1e_ovlp), dimensionless, PySCF AO order
ENERGY = "energy"  # () float64 | total SCF energy, Hartree
MO_ENERGY = "mo_energy"  # (nao,) float64 | eigenvalues of F C = S C e, Hartree
NOCC = "nocc"  # () int64 | number of doubly occupied orbitals (closed shell)
CONVERGED = "converged"  # () bool | SCF converged; False only in imported sets that keep the
#   unconverged frames of their source (QH9-dynamic), counted in META_UNCONVERGED; labels
#   that hamnet computes itself are always converged
CYCLES = "cycles"  # () int64 | SCF cycles used
SECONDS = "seconds"  # () float64 | wall-clock seconds of the SCF, s
SOURCE_ID = "source_id"  # str | where the structure comes from: molecule id, MD frame, file row
PYSCF_VERSION = "pyscf_version"  # str | PySCF of the process that ran this SCF (a worker's)
THREADS = "threads"  # () int64 | OpenMP threads of the process that ran this SCF
DEVICE = "device"  # str | "cpu" (PySCF), or "cuda:<i> <GPU name>, gpu4pyscf <version>"

#: Keys every record has.
REQUIRED = (Z, POS, F, SOURCE_ID)
#: Keys a record may have (absent when the source does not provide them).
OPTIONAL = (
    S, ENERGY, MO_ENERGY, NOCC, CONVERGED, CYCLES, SECONDS, THREADS, PYSCF_VERSION, DEVICE,
)
ALL = REQUIRED + OPTIONAL
#: Keys whose value is a ``str`` (kept in the encoded record's header, not as arrays).
TEXT = (SOURCE_ID, PYSCF_VERSION, DEVICE)

#: dtype of each array key; scalar keys hold 0-d arrays on disk, Python scalars in memory.
DTYPES = {
    Z: "int64",
    POS: "float64",
    F: "float64",
    S: "float64",
    ENERGY: "float64",
    MO_ENERGY: "float64",
    NOCC: "int64",
    CONVERGED: "bool",
    CYCLES: "int64",
    SECONDS: "float64",
    THREADS: "int64",
}
SCALARS = (ENERGY, NOCC, CONVERGED, CYCLES, SECONDS, THREADS)

#: Unit of each key, as written into the metadata of every dataset.
UNITS = {
    POS: "angstrom",
    F: "hartree",
    S: "dimensionless",
    ENERGY: "hartree",
    MO_ENERGY: "hartree",
    SECONDS: "second",
}

# ---- metadata keys --------------------------------------------------------------------
#: Version of the on-disk layout this hamnet writes and reads.
SCHEMA_VERSION = 1
FORMAT_NAME = "hamnet-dataset"

META_FORMAT = "format"  # str | always FORMAT_NAME
META_SCHEMA = "schema_version"  # int | SCHEMA_VERSION at write time
META_HAMNET_VERSION = "hamnet_version"  # str
META_PYSCF_VERSION = "pyscf_version"  # str | PySCF that computed (or that reads) the labels
META_RECIPE = "recipe"  # str | recipe name, or "import:<format>"
META_XC = "xc"  # str | exchange-correlation functional, e.g. "pbe", "b3lyp"
META_XC_SOURCE = "xc_source"  # str | the functional as the source program named it (QH9: "b3lyp")
META_SOURCE_PYSCF_VERSION = "source_pyscf_version"  # str | PySCF that computed imported labels
META_XC_DEFINITION = "xc_definition"  # str | the functional as the PySCF in use parses it
META_BASIS = "basis"  # str | PySCF basis name, e.g. "def2-svp"
META_GRID_LEVEL = "grid_level"  # int or None | PySCF grids.level
META_CONV_TOL = "conv_tol"  # float or None | PySCF conv_tol (Hartree)
META_CONV_TOL_GRAD = "conv_tol_grad"  # float or None | PySCF conv_tol_grad (orbital gradient)
META_UNITS = "units"  # dict | UNITS
META_AO_ORDER = "ao_order"  # str | always "pyscf"
META_SPLITS = "splits"  # dict name -> {"train"|"val"|"test": [int record index, ...]}
META_COUNT = "count"  # int | number of records
META_PROVENANCE = "provenance"  # str | where the data come from, how they were made
META_DEVIATIONS = "deviations"  # str | how this set differs from the published one
META_SOURCE = "source"  # dict | recipe parameters or imported file and format
META_FAILED = "failed"  # int | structures whose SCF failed (counted, never stored)
META_UNCONVERGED = "unconverged"  # list[int] or None | indices of records whose source SCF did
#   not converge (kept, CONVERGED False); len() is their count; None: the source does not say
META_CREATED = "created"  # str | ISO time of finalization
META_COMPLETE = "complete"  # bool | False while a make is still running or was interrupted

SPLIT_PARTS = ("train", "val", "test")
