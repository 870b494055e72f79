"""Label one structure with a PySCF restricted Kohn-Sham calculation.

The stored Fock matrix is ``mf.get_fock()`` evaluated at the converged density
(``mf.make_rdm1()``), in PySCF's AO order and Hartree; ``mo_energy`` are the
eigenvalues of that same matrix in the metric of the stored overlap, so ``F``, ``S``
and ``mo_energy`` are mutually consistent. This module imports PySCF and numpy only,
so worker processes start fast.

``device="cuda"`` runs the same SCF with gpu4pyscf (an optional extra, imported only
then); :func:`check_device` refuses it with a one-line reason where gpu4pyscf or a
CUDA device is missing. Every record carries the PySCF version, OpenMP thread count
and device of the process that computed it.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.linalg

from hamnet.data import keys as K
from hamnet.errors import HamnetError
from hamnet.molecule import build_mole


@dataclass(frozen=True)
class SCFSettings:
    """How a structure is labeled: functional, basis, grid and convergence.

    Attributes
    ----------
    xc : str
        PySCF functional name (``"pbe"``, ``"b3lyp"``).
    basis : str
        PySCF basis name (``"def2-svp"``).
    grid_level : int
        ``mf.grids.level`` (PySCF's default is 3).
    conv_tol : float
        ``mf.conv_tol``, Hartree (energy change between cycles).
    conv_tol_grad : float
        ``mf.conv_tol_grad`` (norm of the orbital gradient). 1e-7 keeps the stored
        ``F`` within ~1e-7 Ha of the fully converged one; PySCF's default
        ``sqrt(conv_tol)`` leaves ~1e-6.
    max_cycle : int
        SCF cycles before a structure counts as failed.
    """

    xc: str
    basis: str
    grid_level: int = 3
    conv_tol: float = 1e-10
    conv_tol_grad: float = 1e-7
    max_cycle: int = 100


class SCFFailed(RuntimeError):
    """The SCF of one structure did not converge (the structure is not stored)."""


class BackendError(HamnetError, ValueError):
    """The labeling backend asked for (``--device``, ``--scheduler``) cannot be used."""


#: Where an SCF can run: PySCF on the CPU, or gpu4pyscf on a CUDA GPU.
DEVICES = ("cpu", "cuda")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())


def check_device(device: str, probe: bool = True) -> str:
    """Describe ``device`` as it will appear in each record, or refuse it.

    Returns ``"cpu"``, or for ``"cuda"`` e.g. ``"cuda:0 NVIDIA H200, gpu4pyscf 1.9.2"``.
    ``probe=False`` checks the name only (a client whose workers have the GPU).

    Raises
    ------
    BackendError
        Unknown device; for ``"cuda"``: CuPy/gpu4pyscf not importable or no usable
        CUDA device (one line, with the underlying reason).
    """
    if device not in DEVICES:
        raise BackendError(f"--device must be one of {', '.join(DEVICES)}; got {device!r}")
    return device if device == "cpu" or not probe else _cuda_device()


@functools.lru_cache(maxsize=None)  # per process; failures are not cached (they raise)
def _cuda_device() -> str:
    try:
        import cupy
    except ImportError:
        raise BackendError(
            "--device cuda needs gpu4pyscf, which is not installed here (pip install "
            "gpu4pyscf-cuda12x, or -cuda11x, matching the CUDA driver); or use --device cpu"
        ) from None
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        why = "none found"
    except Exception as exc:  # no driver, driver too old, ...: CuPy raises at first use
        count, why = 0, _one_line(exc)
    if count < 1:
        raise BackendError(f"--device cuda: no usable CUDA device ({why}); use --device cpu")
    try:
        import gpu4pyscf
        from gpu4pyscf import dft  # noqa: F401  (what label_structure uses)
    except Exception as exc:
        raise BackendError(
            f"--device cuda: gpu4pyscf cannot be imported ({_one_line(exc)}); install the "
            "gpu4pyscf-cuda1Nx matching the CUDA driver, or use --device cpu"
        ) from None
    dev = int(cupy.cuda.Device().id)
    name = cupy.cuda.runtime.getDeviceProperties(dev)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return f"cuda:{dev} {name}, gpu4pyscf {gpu4pyscf.__version__}"


def _kohn_sham(mol, device: str):
    """Restricted Kohn-Sham object of PySCF (cpu) or gpu4pyscf (cuda)."""
    if device == "cuda":
        from gpu4pyscf import dft as gpu_dft

        return gpu_dft.RKS(mol)
    from pyscf import dft

    return dft.RKS(mol)


def _host(a) -> np.ndarray:
    """numpy copy of a numpy or CuPy (``.get()``) array."""
    return np.asarray(a if isinstance(a, np.ndarray) else a.get() if hasattr(a, "get") else a)


def label_structure(
    Z, pos, settings: SCFSettings, source_id: str, with_overlap: bool = True, device: str = "cpu"
) -> dict:
    """Run the SCF and return a record (keys of :mod:`hamnet.data.keys`).

    Parameters
    ----------
    Z : (n_atoms,) int
    pos : (n_atoms, 3) float, Angstrom
    settings : SCFSettings
    source_id : str
        Stored as the record's ``source_id``.
    with_overlap : bool
        Also store ``S = int1e_ovlp``.
    device : str
        ``"cpu"`` (PySCF) or ``"cuda"`` (gpu4pyscf); see :func:`check_device`.

    Raises
    ------
    SCFFailed
        When the SCF does not converge in ``settings.max_cycle`` cycles.
    BackendError
        ``device`` cannot be used in this process.
    """
    import pyscf
    from pyscf import lib

    where = check_device(device)
    mol = build_mole(Z, pos, settings.basis, spin=0)  # closed shell (hamnet.molecule checks the geometry)
    mf = _kohn_sham(mol, device)
    mf.xc = settings.xc
    mf.grids.level = settings.grid_level
    mf.conv_tol = settings.conv_tol
    mf.conv_tol_grad = settings.conv_tol_grad
    mf.max_cycle = settings.max_cycle
    t0 = time.perf_counter()
    mf.kernel()
    if not mf.converged:
        raise SCFFailed(
            f"{source_id}: SCF not converged in {settings.max_cycle} cycles "
            f"(last energy {mf.e_tot:.10f} Ha)"
        )
    fock = _host(mf.get_fock())  # F[D] at the converged density D = mf.make_rdm1()
    seconds = time.perf_counter() - t0
    s = mol.intor_symmetric("int1e_ovlp")
    fock = 0.5 * (fock + fock.T)  # exact symmetry; differences are round-off only
    mo_energy = scipy.linalg.eigh(fock, s, eigvals_only=True)
    rec = {
        K.Z: np.asarray(Z, dtype=np.int64),
        K.POS: np.asarray(pos, dtype=np.float64),
        K.F: fock,
        K.ENERGY: float(mf.e_tot),
        K.MO_ENERGY: mo_energy,
        K.NOCC: int(mol.nelectron // 2),
        K.CONVERGED: True,
        K.CYCLES: int(getattr(mf, "cycles", -1)),
        K.SECONDS: float(seconds),
        K.SOURCE_ID: source_id,
        K.PYSCF_VERSION: pyscf.__version__,
        K.THREADS: int(lib.num_threads()),
        K.DEVICE: where,
    }
    if with_overlap:
        rec[K.S] = s
    return rec


#: The old name (tests/test_data_cluster.py uses it); not to be confused with
#: :func:`hamnet.scf.run_scf`, which times one SCF from one initial guess.
run_scf = label_structure


@dataclass
class LabelResult:
    """Outcome of one labeling task: a record, or the reason it failed."""

    task: int
    record: Optional[dict] = None
    error: Optional[str] = None
    seconds: float = 0.0


def label_task(args) -> LabelResult:
    """Worker entry point: ``(task, Z, pos, source_id, settings, with_overlap, device)``."""
    task, Z, pos, source_id, settings, with_overlap, device = args
    t0 = time.perf_counter()
    try:
        rec = label_structure(Z, pos, settings, source_id, with_overlap, device)
        return LabelResult(task, record=rec, seconds=time.perf_counter() - t0)
    except SCFFailed as exc:
        return LabelResult(task, error=str(exc), seconds=time.perf_counter() - t0)
    except BackendError:  # this process cannot label at all: not a property of the structure
        raise
    except Exception as exc:  # a PySCF error on one geometry must not kill the run
        error = f"{source_id}: {type(exc).__name__}: {exc}"
        return LabelResult(task, error=error, seconds=time.perf_counter() - t0)


def init_worker() -> None:
    """Pool initializer: one OpenMP thread per worker process."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from pyscf import lib

    lib.num_threads(1)
