"""A predicted Fock matrix as a PySCF initial guess, and timed SCF runs to compare guesses.

The bridge is one pure function, :func:`guess_dm`: it diagonalizes a Fock matrix in the
AO overlap metric with the SCF object's own ``eig``, ``get_occ`` and ``make_rdm1``, so the
occupations (charge, spin, restricted or not, smearing, point-group symmetry) follow
PySCF's rules exactly. :func:`predict_guess` adds the model: it checks the basis, warns
about a functional mismatch, predicts and calls :func:`guess_dm`::

    mf = dft.RKS(mol, xc="pbe")
    mf.kernel(dm0=predict_guess(mf, model))

Units: Fock matrices and energies in Hartree, AOs in PySCF's order for ``mf.mol``.

The model is duck-typed: ``model.predict(mol)`` returns the ``(nao, nao)`` Fock matrix,
``model.basis`` is an :class:`hamnet.basis.OrbitalBasis` and ``model.xc`` names the
functional the model was trained on (``None`` if unknown).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Union

import numpy as np
import scipy.linalg
from pyscf import dft, gto, scf

from hamnet.errors import HamnetError
from hamnet.molecule import build_mole, read_mole

__all__ = [
    "GuessError",
    "FunctionalMismatchWarning",
    "guess_dm",
    "predict_guess",
    "scf_functional",
    "same_functional",
    "check_functional",
    "guard_guess",
    "GuardReport",
    "GUARD_MODES",
    "MAX_DENSITY_SHIFT",
    "make_scf",
    "SCFRun",
    "run_scf",
    "PYSCF_GUESSES",
    "build_mole",
    "read_mole",
    "model_guess",
]

# PySCF's own initial guesses that the benchmarks compare against; "minao" is PySCF's default.
PYSCF_GUESSES = ("minao", "atom", "huckel", "1e", "sap")
_HF_NAMES = {"hf", "rhf", "uhf", "rohf", "scf"}


class GuessError(HamnetError, ValueError):
    """A Fock matrix or SCF object that cannot give an initial guess."""


class FunctionalMismatchWarning(UserWarning):
    """The SCF's functional is not the one the model was trained on."""


# --------------------------------------------------------------------------------------
# Fock matrix -> density matrix
# --------------------------------------------------------------------------------------


def _is_unrestricted(mf) -> bool:
    return isinstance(mf, scf.uhf.UHF)


def _as_fock_array(fock) -> np.ndarray:
    if hasattr(fock, "detach"):  # torch.Tensor, without importing torch here
        fock = fock.detach().cpu().numpy()
    try:
        arr = np.asarray(fock)
    except Exception as exc:
        raise GuessError(f"Fock matrix of type {type(fock).__name__} is not an array") from exc
    if np.iscomplexobj(arr):
        raise GuessError("Fock matrix is complex; hamnet guesses need a real symmetric matrix")
    if not np.issubdtype(arr.dtype, np.number):
        raise GuessError(f"Fock matrix has non-numeric dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def guess_dm(mf, fock, *, sym_tol: float = 1e-6) -> np.ndarray:
    """Density matrix of the occupied eigenvectors of ``fock`` in the AO overlap metric.

    Solves ``F C = S C e`` with ``mf.eig``, occupies with ``mf.get_occ`` (so the electron
    count follows ``mol.charge`` and ``mol.spin``) and builds ``mf.make_rdm1``.

    Parameters
    ----------
    mf : pyscf.scf.hf.SCF
        RHF/RKS, ROHF/ROKS or UHF/UKS object (also symmetry-adapted, density-fitted...).
        Generalized (GHF/GKS) and relativistic SCF objects are not supported.
    fock : array_like, shape (nao, nao), Hartree
        Closed-shell Fock/Kohn-Sham matrix in PySCF AO order for ``mf.mol``. For UHF/UKS
        it is used for both spins; a spin-resolved ``(2, nao, nao)`` (alpha, beta) stack
        is also accepted there. numpy arrays and torch tensors are accepted.
    sym_tol : float
        Largest allowed ``max|F - F^T|`` relative to ``max(1, max|F|)``; the matrix is
        symmetrized as ``(F + F^T) / 2`` before diagonalization.

    Returns
    -------
    numpy.ndarray, shape (nao, nao) or (2, nao, nao) for unrestricted SCF
        Density matrix as ``mf.make_rdm1`` makes it (carries ``mo_coeff``/``mo_occ``);
        ``tr(D S)`` equals the electron count. Pass it as ``mf.kernel(dm0=...)``.

    Raises
    ------
    GuessError
        Unsupported SCF type, wrong shape, non-finite values, or a non-symmetric matrix.
    """
    if isinstance(mf, scf.ghf.GHF) or not isinstance(mf, scf.hf.SCF) or isinstance(
        mf, getattr(scf.dhf, "DHF", ())
    ):
        raise GuessError(
            f"{type(mf).__name__} is not supported: guess_dm needs a restricted, "
            "restricted open-shell or unrestricted PySCF SCF object (RHF/RKS, ROHF/ROKS, UHF/UKS)"
        )
    f = _as_fock_array(fock)
    nao = mf.mol.nao_nr()
    unrestricted = _is_unrestricted(mf)
    allowed = [(nao, nao)] + ([(2, nao, nao)] if unrestricted else [])
    if f.shape not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise GuessError(
            f"Fock matrix has shape {f.shape}, but the molecule has {nao} AOs in basis "
            f"{mf.mol.basis!r}: expected {want}"
        )
    if not np.all(np.isfinite(f)):
        bad = int(np.size(f) - np.count_nonzero(np.isfinite(f)))
        raise GuessError(f"Fock matrix has {bad} non-finite (NaN or inf) entries")
    ft = np.swapaxes(f, -1, -2)
    asym = float(np.abs(f - ft).max())
    scale = max(1.0, float(np.abs(f).max()))
    if asym > sym_tol * scale:
        raise GuessError(
            f"Fock matrix is not symmetric: max|F - F^T| = {asym:.3e} Ha exceeds "
            f"{sym_tol:.1e} x {scale:.3g} Ha"
        )
    f = 0.5 * (f + ft)
    if unrestricted and f.ndim == 2:
        f = np.stack([f, f])  # closed-shell prediction for both spins
    s1e = mf.get_ovlp()
    mo_energy, mo_coeff = mf.eig(f, s1e)
    mo_occ = mf.get_occ(mo_energy, mo_coeff)
    return mf.make_rdm1(mo_coeff, mo_occ)


# --------------------------------------------------------------------------------------
# Functionals
# --------------------------------------------------------------------------------------


def scf_functional(mf) -> str:
    """Functional of an SCF object: ``mf.xc`` for Kohn-Sham, ``"HF"`` for Hartree-Fock."""
    return str(getattr(mf, "xc", "HF"))


def _xc_key(xc: str):
    name = xc.strip().lower()
    if name in _HF_NAMES:
        name = "hf"
    try:
        (hyb, alpha, omega), funcs = dft.libxc.parse_xc(name)
    except Exception:  # unknown to libxc: fall back to the normalized name
        return name.replace("-", "").replace("_", "").replace(" ", "")
    terms = tuple(sorted((int(fid), round(float(c), 12)) for fid, c in funcs))
    return (round(float(hyb), 12), round(float(alpha), 12), round(float(omega), 12), terms)


def same_functional(a: str, b: str) -> bool:
    """Whether two functional names mean the same functional to PySCF's libxc parser.

    ``"PBE"`` equals ``"pbe,pbe"``; ``"HF"``/``"RHF"``/``"UHF"`` are Hartree-Fock.
    """
    return _xc_key(a) == _xc_key(b)


_WARNED: set = set()  # (model xc, SCF xc) pairs already reported in this process


def check_functional(mf, model_xc: Optional[str]) -> None:
    """Warn (:class:`FunctionalMismatchWarning`) if ``mf``'s functional is not ``model_xc``.

    One line per pair of functionals and process, however many SCFs follow.
    ``model_xc=None`` (a model of unknown provenance) is not checked.
    """
    if model_xc is None:
        return
    mf_xc = scf_functional(mf)
    if not same_functional(mf_xc, str(model_xc)):
        key = (_xc_key(str(model_xc)), _xc_key(mf_xc))
        if key in _WARNED:
            return
        _WARNED.add(key)
        warnings.warn(
            f"the model was trained on functional {model_xc!r} but this SCF uses {mf_xc!r}; "
            "the prediction is still a valid initial guess, but expect more SCF cycles",
            FunctionalMismatchWarning,
            stacklevel=3,
        )


@dataclass(frozen=True)
class GuardReport:
    """What the guard of :func:`predict_guess` decided for one molecule.

    Attributes
    ----------
    used : {"hamnet", "minao"}
        The guess handed to the SCF.
    reason : {"spectrum", "density", "energy"}
        The check that decided (:func:`guard_guess`). ``"spectrum"``: the predicted matrix
        has an orbital energy far below the deepest core level of the molecule's atoms (a
        spurious state). ``"density"``: the predicted density was compared element by
        element with minao's (kept if within :data:`MAX_DENSITY_SHIFT`). ``"energy"``
        (``mode="energy"`` only, after the density check passed): the two guess energies
        were compared.
    density_shift : float or None
        ``max |P_hamnet - P_minao|`` over the AO density matrix elements (electrons);
        ``None`` when the spectrum check already decided.
    e_hamnet, e_minao : float or None
        ``mode="energy"``: total energy of the predicted guess density and of the density
        minao's own SCF holds after its first cycle (the occupied orbitals of
        ``F[P_minao]``), Hartree, the SCF's own functional and grid; ``None`` otherwise.
    seconds : float
        Wall time of the check.
    """

    used: str
    reason: str
    density_shift: Optional[float]
    e_hamnet: Optional[float]
    e_minao: Optional[float]
    seconds: float


#: How far below the deepest free-atom orbital energy a molecular orbital may lie, Hartree.
#: Core levels shift by well under 1 Ha between molecules (chemical shifts), and Kohn-Sham
#: core levels lie above Hartree-Fock ones, so real Fock matrices never come close.
CORE_MARGIN = 2.0

#: Largest ``max |P - P_minao|`` (AO density matrix elements, electrons) of a density the
#: guard keeps. Bonding moves a converged density only a little away from the superposition
#: of atomic densities: 0.51-0.65 for the converged B3LYP/def2-SVP densities of QM9 molecules
#: and for good predictions, while predictions with spurious low-lying virtual orbitals
#: (S near-null directions) put 3 to 1000 electrons on single elements
#: (benchmarks/README.md, "The guard").
MAX_DENSITY_SHIFT = 1.0

#: Guard modes of :func:`guard_guess` / :func:`predict_guess`.
GUARD_MODES = ("density", "energy")


def _spurious_core_state(mf, fock) -> bool:
    """Whether ``fock`` has an orbital energy far below any atom's deepest core level.

    The bound is the lowest orbital energy of the molecule's free atoms (PySCF's
    spherically averaged atomic Hartree-Fock in the molecule's basis, the one its
    ``init_guess="atom"`` uses; a fraction of a second) minus :data:`CORE_MARGIN`.
    Water: O 1s is -20.5 Ha (HF) or -19.1 Ha (B3LYP), the bound -22.8 Ha. An eigenvalue
    below it is a spurious state of a poor prediction, which the SCF would occupy.
    """
    from pyscf.scf import atom_hf

    with warnings.catch_warnings():  # PySCF's atomic SCF warns about its own internals
        warnings.simplefilter("ignore", DeprecationWarning)
        atoms = atom_hf.get_atm_nrhf(mf.mol)
    floor = min(float(np.min(v[1])) for v in atoms.values()) - CORE_MARGIN
    s = mf.get_ovlp()
    f = np.asarray(fock, dtype=np.float64)
    mats = f if f.ndim == 3 else [f]
    e_min = min(scipy.linalg.eigh(0.5 * (m + m.T), s, eigvals_only=True, subset_by_index=[0, 0])[0]
                for m in mats)
    return bool(e_min < floor)


def guard_guess(mf, dm, fock=None, *, mode: str = "density", margin: float = 0.0):
    """Keep the predicted density ``dm`` only if it is not worse than minao's guess.

    Checks, cheap first; the first that fails hands the SCF PySCF's minao guess:

    1. *Spectrum* (needs the predicted ``fock``; no Fock build): an orbital energy far
       below the deepest core level of the molecule's atoms is a spurious state
       (:func:`_spurious_core_state`).
    2. *Density* (no Fock build): ``max |P_hamnet - P_minao| <= MAX_DENSITY_SHIFT``. A
       prediction that is unreliable for this molecule (other sizes or chemistry than the
       training set) usually has spurious low virtual orbitals along near-null directions
       of S, whose occupation puts many electrons on single density matrix elements.
    3. *Energy* (``mode="energy"`` only; three Fock builds, about three SCF cycles): the
       energy of a guess density is the classic guess-quality measure. The prediction is
       kept if ``E[P_hamnet] <= E[P_1] + margin``, where ``P_1`` is the density minao's
       own SCF holds after its first cycle (the occupied orbitals of ``F[P_minao]``). Both
       are idempotent, so they compare fairly; ``P_minao`` itself is not idempotent, and
       its energy lies below the converged one (1.2 Ha on a QM9 molecule).

    ``mode="density"`` (the default of :func:`predict_guess`) costs a fraction of a second.

    Returns
    -------
    (dm0, GuardReport)
    """
    if mode not in GUARD_MODES:
        raise GuessError(f"guard mode must be one of {', '.join(GUARD_MODES)}, got {mode!r}")
    t0 = time.perf_counter()
    dm_minao = mf.get_init_guess(mf.mol, "minao")

    def done(use_pred, reason, shift=None, e_pred=None, e_ref=None):
        rep = GuardReport("hamnet" if use_pred else "minao", reason, shift, e_pred, e_ref,
                          time.perf_counter() - t0)
        return (dm if use_pred else dm_minao), rep

    if fock is not None and _spurious_core_state(mf, fock):
        return done(False, "spectrum")
    dm_arr = np.asarray(dm)
    if dm_arr.shape != np.shape(dm_minao):  # e.g. a closed-shell density for a UHF object
        raise GuessError(f"guess density has shape {dm_arr.shape}, the SCF's minao guess {np.shape(dm_minao)}")
    shift = float(np.max(np.abs(dm_arr - dm_minao)))
    if not np.isfinite(shift) or shift > MAX_DENSITY_SHIFT:
        return done(False, "density", shift)
    if mode == "density":
        return done(True, "density", shift)
    e_pred = float(mf.energy_tot(dm=dm))
    dm_first = guess_dm(mf, mf.get_fock(dm=dm_minao))
    e_ref = float(mf.energy_tot(dm=dm_first))
    use_pred = bool(np.isfinite(e_pred)) and e_pred <= e_ref + margin
    return done(use_pred, "energy", shift, e_pred, e_ref)


def predict_guess(mf, model=None, *, guard=True, sym_tol: float = 1e-6, report=None):
    """Predict the Fock matrix of ``mf.mol`` and return the guess density.

    Parameters
    ----------
    mf : pyscf.scf.hf.SCF
    model : model, str or None
        A hamnet model, a model file or shipped-model name, or ``None``: the shipped
        model for the molecule's basis and elements (:func:`hamnet.pretrained.default_model`).
    guard : bool or {"density", "energy"}
        Fall back to PySCF's minao guess when the prediction is unreliable
        (:func:`guard_guess`). ``True`` (default) is ``"density"``: a spectrum and a
        density check, no Fock build. ``"energy"`` adds the comparison of guess energies
        (three Fock builds). ``False`` uses the prediction as it is.
    report : list, optional
        If given, the :class:`GuardReport` is appended to it.

    Checks that the molecule's basis is the model's (:class:`hamnet.basis.BasisError`
    otherwise) and warns once if the functionals differ. Use as
    ``mf.kernel(dm0=predict_guess(mf))``. See :func:`guess_dm` for the result.
    """
    mode = _guard_mode(guard)
    if model is None:
        from hamnet.pretrained import default_model

        model = default_model(mf.mol.basis, mf.mol.atom_charges())
    elif isinstance(model, (str, os.PathLike)):
        from hamnet.model import load_model

        model = load_model(model)
    model.basis.check_mole(mf.mol)
    check_functional(mf, getattr(model, "xc", None))
    fock = model.predict(mf.mol)
    dm = guess_dm(mf, fock, sym_tol=sym_tol)
    if mode is not None:
        dm, rep = guard_guess(mf, dm, fock, mode=mode)
        if report is not None:
            report.append(rep)
    return dm


def _guard_mode(guard) -> Optional[str]:
    """``predict_guess``'s ``guard`` argument as a mode of :func:`guard_guess` (None: off)."""
    if guard is True:
        return "density"
    if guard is False or guard is None:
        return None
    if isinstance(guard, str) and guard in GUARD_MODES:
        return guard
    raise GuessError(f"guard must be True, False or one of {', '.join(GUARD_MODES)}, got {guard!r}")


def model_guess(model, *, name: str = "hamnet", guard=True, reports=None) -> Callable:
    """``guess(mf) -> dm0`` that predicts with ``model`` (for :func:`run_scf`).

    ``guard`` and ``reports`` (a list collecting :class:`GuardReport`) as in
    :func:`predict_guess`.
    """

    def guess(mf):
        return predict_guess(mf, model, guard=guard, report=reports)

    guess.__name__ = name
    return guess


# --------------------------------------------------------------------------------------
# Molecules
# --------------------------------------------------------------------------------------


# build_mole and read_mole live in hamnet.molecule (one helper for every caller) and are
# re-exported here, where the SCF bridge's users have always found them.


# --------------------------------------------------------------------------------------
# Timed SCF runs
# --------------------------------------------------------------------------------------


def _is_hf(xc: Optional[str]) -> bool:
    return xc is None or xc.strip().lower() in _HF_NAMES


def make_scf(
    mol: gto.Mole,
    xc: Optional[str] = None,
    *,
    conv_tol: float = 1e-9,
    max_cycle: int = 100,
    grid_level: Optional[int] = None,
    conv_tol_grad: Optional[float] = None,
    verbose: int = 0,
):
    """A fresh SCF object: HF if ``xc`` is ``None``/``"HF"``, else Kohn-Sham with ``xc``.

    Restricted for ``mol.spin == 0``, unrestricted otherwise (as ``scf.HF``/``dft.KS``).
    ``conv_tol`` is PySCF's energy threshold in Hartree; ``grid_level`` sets
    ``mf.grids.level`` (PySCF's default when ``None``).
    """
    if _is_hf(xc):
        mf = scf.UHF(mol) if mol.spin else scf.RHF(mol)
    else:
        mf = dft.UKS(mol, xc=xc) if mol.spin else dft.RKS(mol, xc=xc)
        if grid_level is not None:
            mf.grids.level = int(grid_level)
    mf.conv_tol = float(conv_tol)
    if conv_tol_grad is not None:
        mf.conv_tol_grad = float(conv_tol_grad)
    mf.max_cycle = int(max_cycle)
    mf.verbose = int(verbose)
    return mf


@dataclass(frozen=True)
class SCFRun:
    """Outcome of one SCF from one initial guess.

    Attributes
    ----------
    guess : str
        Name of the initial guess.
    cycles : int
        SCF iterations PySCF performed (``mf.cycles``).
    converged : bool
    e_tot : float
        Final total energy, Hartree.
    guess_s, scf_s, wall_s : float
        Seconds to build the guess (model prediction included), to iterate, and both.
    """

    guess: str
    cycles: int
    converged: bool
    e_tot: float
    guess_s: float
    scf_s: float
    wall_s: float

    def as_dict(self) -> dict:
        return asdict(self)


GuessSpec = Union[str, Callable]


def run_scf(mol: gto.Mole, guess: GuessSpec, *, name: Optional[str] = None, xc=None, **settings):
    """Run a fresh SCF on ``mol`` from one initial guess and time it.

    Parameters
    ----------
    mol : pyscf.gto.Mole
    guess : str or callable
        A PySCF guess key (``"minao"``, ``"atom"``, ``"huckel"``, ``"1e"``, ``"sap"``...)
        or ``guess(mf) -> dm0`` (e.g. ``lambda mf: predict_guess(mf, model)``); its time,
        model prediction included, counts in ``guess_s`` and ``wall_s``.
    name : str, optional
        Label for the result (default: the key, or the callable's ``__name__``).
    xc : str, optional
        Functional (``None`` for HF); ``settings`` go to :func:`make_scf`.

    Returns
    -------
    (SCFRun, mf)
        The timings/energy and the converged SCF object.
    """
    mf = make_scf(mol, xc, **settings)
    if isinstance(guess, str):
        key = guess.lower()
        label = name or key
        make_guess = lambda m: m.get_init_guess(m.mol, key)  # noqa: E731
    elif callable(guess):
        label = name or getattr(guess, "__name__", "custom")
        make_guess = guess
    else:
        raise GuessError(f"guess must be a PySCF guess name or a callable, got {type(guess)}")
    t0 = time.perf_counter()
    dm0 = make_guess(mf)
    t1 = time.perf_counter()
    e_tot = mf.kernel(dm0=dm0)
    t2 = time.perf_counter()
    run = SCFRun(
        guess=label,
        cycles=int(mf.cycles),
        converged=bool(mf.converged),
        e_tot=float(e_tot),
        guess_s=t1 - t0,
        scf_s=t2 - t1,
        wall_s=t2 - t0,
    )
    return run, mf
