"""SCF acceleration: cycles and wall time from PySCF's own guesses and from hamnet's.

For every molecule, the SCF is run from each of PySCF's guesses (``minao``, ``atom``,
``huckel``, ``1e``, ``sap``) and from hamnet's prediction, each time on a fresh SCF
object. Reported per molecule and on average:

* cycles (``mf.cycles``) and wall time in seconds; hamnet's wall time includes the model
  prediction and the diagonalization that turns it into a density matrix;
* QH9's ratios: achieved = cycles(hamnet) / cycles(baseline), optimal = 1 / cycles(baseline);
* that every final energy equals the default (``minao``) run's to 1e-7 Ha;
* the guess-quality metrics of the prediction itself (before the guard, untimed):
  ``H_mae``, ``eps_occ_mae``, ``psi_cos``, ``density_mae`` (:func:`hamnet.metrics.molecule_metrics`
  against the reference F: the store's, or a tightly converged SCF for ``--xyz``) and
  ``guess_energy`` = E[P_guess] - E_scf (one Fock build, the benchmark's own SCF settings;
  E_scf is the converged ``minao`` run's energy), and across molecules their Pearson and
  Spearman correlations (:mod:`scipy.stats`) with the SCF cycles from hamnet's guess
  (``summary.guess_quality``; ``None`` for fewer than 3 molecules or constant values).

Molecules come from a hamnet data store (``--data``, e.g. ``--split random --part test``;
its metadata gives the functional, basis and grid level) or from geometry files
(``--xyz`` with ``--basis`` and ``--xc``). ``--oracle`` uses the exact converged Fock
matrix as the "prediction" (the stored ``F``, or for ``--xyz`` a tightly converged SCF
run untimed beforehand): the upper bound any model can reach; ``--oracle-noise SIGMA``
perturbs it, a stand-in for a model of that error. Otherwise ``--model CKPT`` is loaded
with ``hamnet.model.load_model``.

Wall time counts the guess (prediction included) and ``mf.kernel``, on a fresh SCF
object each time, so one-time set-up (integrals, DFT grid) is in every run alike. Before
the first molecule, one untimed single-cycle run of each kind warms up the libraries.

Results go to ``--out`` (JSON), rewritten atomically after each molecule; running the
same command again skips the molecules already there, so an interrupted run resumes.
``--merge A.json B.json --out C.json`` joins runs of one benchmark (equal settings) over
other molecules, e.g. a set measured in two sessions, and summarizes them together.
At the end a chart goes next to it (``OUT.png``, :func:`hamnet.plots.write_scf_chart`).

Example::

    OMP_NUM_THREADS=1 python benchmarks/scf_speedup.py --xyz water.xyz methanol.xyz \\
        --basis def2-svp --xc pbe --oracle --out scf_oracle.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
from tqdm import tqdm

from hamnet.metrics import METRIC_UNITS, UNIT_SCALE, guess_energy, molecule_metrics
from hamnet.scf import GUARD_MODES, PYSCF_GUESSES, build_mole, guess_dm, make_scf, model_guess, read_mole, run_scf

DEFAULT_GUESS = "minao"  # PySCF's default init_guess: the energy reference
ENERGY_TOL = 1e-7  # Hartree
ORACLE_CONV_TOL = 1e-11  # Hartree, for the reference Fock matrix of --xyz (--oracle, guess metrics)
#: Guess-quality metrics correlated with the SCF cycles from hamnet's guess.
GUESS_METRICS = ("H_mae", "eps_occ_mae", "psi_cos", "density_mae", "guess_energy")
MIN_CORRELATION_MOLECULES = 3


# --------------------------------------------------------------------------------------
# Molecules
# --------------------------------------------------------------------------------------


def parse_indices(spec: str, n: int) -> list[int]:
    """``"a:b[:step]"`` (Python slice) or ``"i,j,k"`` -> indices into ``range(n)``."""
    try:
        if ":" in spec:
            parts = [int(p) if p else None for p in spec.split(":")]
            return list(range(n))[slice(*parts)]
        idx = [int(p) for p in spec.split(",") if p.strip()]
    except ValueError as exc:
        raise ValueError(f"--indices {spec!r} is neither 'a:b[:step]' nor 'i,j,k'") from exc
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"--indices {bad} out of range for a data set of {n} records")
    return [i % n for i in idx]


def dataset_molecules(path: str, split: Optional[str], part: str, indices: Optional[str]):
    """``(metadata, count, iterator of (key, mol, F))`` over records of a hamnet data store.

    The records are ``part`` of the named ``split`` (all records without a split), then
    ``indices`` of those. A record's charge follows from its ``nocc`` (closed shell).
    """
    from hamnet.data import keys as K
    from hamnet.data import open_dataset

    ds = open_dataset(path)
    meta = ds.metadata
    idx = ds.split(split, part) if split else list(range(len(ds)))
    if indices:
        idx = [idx[i] for i in parse_indices(indices, len(idx))]

    def items():
        for i in idx:
            rec = ds[i]
            charge = 0
            if rec.get(K.NOCC) is not None:
                charge = int(np.sum(rec[K.Z])) - 2 * int(rec[K.NOCC])
            mol = build_mole(rec[K.Z], rec[K.POS], meta[K.META_BASIS], charge=charge)
            yield f"{i}:{rec.get(K.SOURCE_ID, '')}", mol, rec[K.F]

    return meta, len(idx), items()


def xyz_molecules(paths, basis, charge, spin) -> tuple[int, Iterator]:
    """``(count, iterator of (key, mol, None))`` over geometry files (Angstrom)."""
    def items():
        for p in paths:
            yield str(p), read_mole(p, basis, charge=charge, spin=spin), None

    return len(paths), items()


def symmetric_noise(n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """``(n, n)`` symmetric matrix with N(0, sigma^2) entries (Hartree)."""
    e = np.random.default_rng(seed).normal(scale=sigma, size=(n, n))
    return (e + e.T) / np.sqrt(2.0)


# --------------------------------------------------------------------------------------
# One molecule
# --------------------------------------------------------------------------------------


def _timed(mol, guess, name, xc, settings, repeat):
    """Run ``repeat`` times; keep the first run's cycles/energy and median times.

    Returns the record and the first run's converged SCF object.
    """
    done = [run_scf(mol, guess, name=name, xc=xc, **settings) for _ in range(repeat)]
    runs = [r for r, _ in done]
    rec = runs[0].as_dict()
    for k in ("guess_s", "scf_s", "wall_s"):
        rec[k] = statistics.median(getattr(r, k) for r in runs)
    if len({r.cycles for r in runs}) > 1:  # pragma: no cover - PySCF is deterministic
        raise RuntimeError(f"{name}: SCF cycles differ between repeats on the same molecule")
    return rec, done[0][1]


def benchmark_molecule(mol, hamnet_guess: Callable, *, name, guesses, xc, settings, repeat=1):
    """All SCF runs of one molecule and its ratios; ``hamnet_guess(mf) -> dm0``.

    Also records ``converged_density_shift``, ``max |P_scf - P_minao|`` of the converged
    density of the minao run, the quantity the guard bounds by
    :data:`hamnet.scf.MAX_DENSITY_SHIFT` (untimed).
    """
    timed = {g: _timed(mol, g, g, xc, settings, repeat) for g in guesses}
    timed[name] = _timed(mol, hamnet_guess, name, xc, settings, repeat)
    runs = {g: rec for g, (rec, _) in timed.items()}
    mf = timed[DEFAULT_GUESS][1]  # minao, which always runs
    shift = float(np.max(np.abs(mf.make_rdm1() - mf.get_init_guess(mol, "minao"))))
    ref = runs[DEFAULT_GUESS]["e_tot"]
    d_e = {g: r["e_tot"] - ref for g, r in runs.items()}
    c = runs[name]["cycles"]
    return {
        "natm": mol.natm,
        "nao": mol.nao_nr(),
        "charge": mol.charge,
        "spin": mol.spin,
        "runs": runs,
        "achieved": {g: c / runs[g]["cycles"] for g in guesses},
        "optimal": {g: 1.0 / runs[g]["cycles"] for g in guesses},
        "speedup_wall": {g: runs[g]["wall_s"] / runs[name]["wall_s"] for g in guesses},
        "dE_vs_default": d_e,
        "energy_ok": all(abs(v) <= ENERGY_TOL for v in d_e.values()),
        "converged": all(r["converged"] for r in runs.values()),
        "converged_density_shift": shift,
    }


def guess_metrics(mol, F_pred, F_ref, e_scf: float, xc, settings) -> dict:
    """Guess-quality metrics of one prediction (Hartree, fractions; :data:`GUESS_METRICS`).

    ``F_ref`` is the converged Fock matrix, ``e_scf`` the converged energy (Hartree) of an
    SCF with ``xc`` and ``settings``; the guess energy uses one Fock build of such an SCF.
    """
    F_pred, F_ref = np.asarray(F_pred, dtype=np.float64), np.asarray(F_ref, dtype=np.float64)
    sl = mol.aoslice_by_atom()
    ao_atom = np.repeat(np.arange(mol.natm), sl[:, 3] - sl[:, 2])
    m = molecule_metrics(F_pred, F_ref, mol.intor("int1e_ovlp"), ao_atom, mol.nelectron // 2)
    m["guess_energy"] = guess_energy(make_scf(mol, xc, **settings), F_pred, e_ref=e_scf)
    return {k: m[k] for k in GUESS_METRICS}


def _correlation(x, y) -> dict:
    """Pearson and Spearman correlation of two samples (``None`` where undefined)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < MIN_CORRELATION_MOLECULES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": None, "pearson_p": None, "spearman": None, "spearman_p": None}
    r, p = stats.pearsonr(x, y)
    rho, q = stats.spearmanr(x, y)
    return {"pearson": float(r), "pearson_p": float(p), "spearman": float(rho), "spearman_p": float(q)}


def guess_quality(molecules: dict, name: str) -> dict:
    """Per metric: mean (reporting units) and correlations with ``name``'s SCF cycles."""
    mols = [m for m in molecules.values() if "guess_metrics" in m]
    cycles = [m["runs"][name]["cycles"] for m in mols]
    out = {"n_molecules": len(mols), "cycles_of": name, "metrics": {}}
    for k in GUESS_METRICS:
        vals = [m["guess_metrics"][k] for m in mols]
        scale = UNIT_SCALE[METRIC_UNITS[k]]
        out["metrics"][k] = {"unit": METRIC_UNITS[k],
                             "mean": float(np.mean(vals)) * scale if vals else None,
                             **_correlation(vals, cycles)}
    return out


def format_guess_quality(q: dict) -> str:
    """A small table: metric, mean, Pearson r and Spearman rho with the SCF cycles."""
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    out = [f"guess quality vs {q['cycles_of']} SCF cycles over {q['n_molecules']} molecules",
           "| metric | mean | Pearson r | Spearman rho |", "|---|---:|---:|---:|"]
    for k, v in q["metrics"].items():
        mean = "-" if v["mean"] is None else f"{v['mean']:.4g} {v['unit']}"
        out.append(f"| {k} | {mean} | {fmt(v['pearson'])} | {fmt(v['spearman'])} |")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Results file, resumable
# --------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, obj) -> None:
    from hamnet.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1))


def load_results(path: Path, settings: dict) -> dict:
    """Results so far, or a fresh file; refuses one written with other settings."""
    if not path.exists():
        return {"settings": settings, "molecules": {}}
    with open(path) as fh:
        res = json.load(fh)
    if res.get("settings") != settings:
        raise ValueError(
            f"{path} was written with other settings ({res.get('settings')}); "
            f"this run uses {settings}. Use another --out to start afresh."
        )
    return res


def merge_results(paths) -> dict:
    """One results dict from files of the same benchmark (equal ``settings``) over other
    molecules, as if one run had made them all; a molecule in two files must agree."""
    res = None
    for path in map(Path, paths):
        try:
            with open(path) as fh:
                part = json.load(fh)
            settings, molecules = part["settings"], part["molecules"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"--merge {path}: not a results file of this benchmark ({exc})") from None
        if res is None:
            res = {"settings": settings, "molecules": {}}
        elif settings != res["settings"]:
            diff = sorted(k for k in set(settings) | set(res["settings"])
                          if settings.get(k) != res["settings"].get(k))
            raise ValueError(f"--merge {path}: other settings than {paths[0]} ({', '.join(diff)})")
        for key, mol in molecules.items():
            if key in res["molecules"] and res["molecules"][key] != mol:
                raise ValueError(f"--merge {path}: molecule {key} is also in an earlier file, "
                                 "with other results")
            res["molecules"][key] = mol
    res["summary"] = summarize(res)
    res["merged_from"] = [str(Path(p).resolve()) for p in paths]
    return res


def summarize(res: dict) -> dict:
    """Means over molecules of cycles, wall time and ratios; the energy check."""
    mols = list(res["molecules"].values())
    if not mols:
        return {}
    names = list(mols[0]["runs"])
    baselines = list(mols[0]["achieved"])
    mean = lambda xs: float(np.mean(list(xs)))  # noqa: E731
    return {
        "n_molecules": len(mols),
        "cycles": {g: mean(m["runs"][g]["cycles"] for m in mols) for g in names},
        "wall_s": {g: mean(m["runs"][g]["wall_s"] for m in mols) for g in names},
        "achieved": {g: mean(m["achieved"][g] for m in mols) for g in baselines},
        "optimal": {g: mean(m["optimal"][g] for m in mols) for g in baselines},
        "max_abs_dE": max(abs(v) for m in mols for v in m["dE_vs_default"].values()),
        "converged_rate": {g: mean(float(m["runs"][g]["converged"]) for m in mols) for g in names},
        "worst": _worst(res["molecules"], names[-1]),
        "guard_fallbacks": sum(m.get("guard", {}).get("used") == "minao" for m in mols),
        "guard_s": mean(m.get("guard", {}).get("seconds", 0.0) for m in mols),
        # the guard's density statistic: converged densities (should stay below the bound)
        # and the predictions it saw
        "max_converged_density_shift": max((m["converged_density_shift"] for m in mols
                                            if "converged_density_shift" in m), default=None),
        "prediction_density_shift": sorted(m["guard"]["density_shift"] for m in mols
                                           if m.get("guard", {}).get("density_shift") is not None),
        "all_energy_ok": all(m["energy_ok"] for m in mols),
        "all_converged": all(m["converged"] for m in mols),
        "guess_quality": guess_quality(res["molecules"], names[-1]),
    }


def _worst(molecules: dict, name: str) -> dict:
    """The molecule where ``name`` needs the most cycles more than minao."""
    key = max(molecules, key=lambda k: molecules[k]["runs"][name]["cycles"]
              - molecules[k]["runs"][DEFAULT_GUESS]["cycles"])
    runs = molecules[key]["runs"]
    return {"molecule": key, "cycles": runs[name]["cycles"],
            f"cycles_{DEFAULT_GUESS}": runs[DEFAULT_GUESS]["cycles"],
            "extra_cycles": runs[name]["cycles"] - runs[DEFAULT_GUESS]["cycles"]}


def format_summary(res: dict) -> str:
    """Markdown tables: per molecule cycles, and the mean over molecules."""
    s = res["summary"]
    if not s:
        return "no molecules"
    first = next(iter(res["molecules"].values()))
    names = list(first["runs"])
    baselines = list(first["achieved"])
    hamnet = names[-1]
    out = ["| molecule | nao | " + " | ".join(f"{g} cycles (s)" for g in names) + " |",
           "|---|---:|" + "---:|" * len(names)]
    for key, m in res["molecules"].items():
        cells = [f"{m['runs'][g]['cycles']} ({m['runs'][g]['wall_s']:.3f})" for g in names]
        out.append(f"| {Path(key).name} | {m['nao']} | " + " | ".join(cells) + " |")
    out += ["", f"| mean over {s['n_molecules']} | " + " | ".join(baselines) + " |",
            "|---|" + "---:|" * len(baselines)]
    out.append("| cycles | " + " | ".join(f"{s['cycles'][g]:.2f}" for g in baselines) + " |")
    out.append("| wall s | " + " | ".join(f"{s['wall_s'][g]:.3f}" for g in baselines) + " |")
    out.append(f"| achieved = cycles({hamnet})/cycles(baseline) | "
               + " | ".join(f"{s['achieved'][g]:.3f}" for g in baselines) + " |")
    out.append("| optimal = 1/cycles(baseline) | "
               + " | ".join(f"{s['optimal'][g]:.3f}" for g in baselines) + " |")
    out += ["",
            f"{hamnet}: {s['cycles'][hamnet]:.2f} cycles, {s['wall_s'][hamnet]:.3f} s on average",
            f"max |E - E({DEFAULT_GUESS})| over all runs: {s['max_abs_dE']:.2e} Ha "
            f"({'all within' if s['all_energy_ok'] else 'NOT all within'} {ENERGY_TOL:.0e} Ha); "
            f"{'all' if s['all_converged'] else 'NOT all'} SCFs converged",
            f"worst molecule for {hamnet}: {s['worst']['molecule']} "
            f"({s['worst']['cycles']} cycles vs {s['worst'][f'cycles_{DEFAULT_GUESS}']} from "
            f"{DEFAULT_GUESS}, {s['worst']['extra_cycles']:+d})"]
    if res["settings"].get("guard"):
        out.append(f"guard: fell back to {DEFAULT_GUESS} on {s['guard_fallbacks']} of "
                   f"{s['n_molecules']} molecules; {s['guard_s']:.3f} s per molecule "
                   f"(included in {hamnet}'s wall time)")
    if s.get("max_converged_density_shift") is not None:
        shifts = s.get("prediction_density_shift") or []
        out.append(f"max |P - P_minao|: converged densities {s['max_converged_density_shift']:.3f}"
                   + (f"; predictions {min(shifts):.3f}-{max(shifts):.3f}" if shifts else ""))
    if s.get("guess_quality", {}).get("n_molecules"):
        out += ["", format_guess_quality(s["guess_quality"])]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


def report(res: dict, out: Path) -> None:
    """Print the tables and draw the chart next to ``out`` (mean cycles / wall time per
    guess, per-molecule scatter)."""
    print(format_summary(res))
    if res["molecules"]:
        from hamnet.plots import write_scf_chart

        print(f"wrote {out} and {write_scf_chart(res, out)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="hamnet data store")
    src.add_argument("--xyz", nargs="+", help="geometry files in Angstrom")
    src.add_argument("--merge", nargs="+", metavar="RESULTS.json",
                     help="run nothing: join results files of one benchmark over other molecules "
                          "(equal settings) into --out, with their summary and chart")
    p.add_argument("--split", help="named split of --data (default: all records)")
    p.add_argument("--part", default="test", choices=("train", "val", "test"),
                   help="part of --split (default test)")
    p.add_argument("--indices", help="subset of those records: 'a:b[:step]' or 'i,j,k'")
    pred = p.add_mutually_exclusive_group()  # one of them is required, except with --merge
    pred.add_argument("--model", metavar="CKPT", help="trained hamnet checkpoint")
    pred.add_argument("--oracle", action="store_true", help="exact converged F as the prediction")
    p.add_argument("--oracle-noise", type=float, default=0.0, metavar="SIGMA",
                   help="with --oracle: add symmetric N(0, SIGMA^2) Ha noise to every element of F "
                        "(a stand-in for a model of that error; fixed seed)")
    p.add_argument("--average", type=int, default=None, metavar="ORDER",
                   help="with --model: predict with the model averaged over a rotation grid of Lebedev "
                        "degree ORDER (hamnet.symmetry.RotationAveraged; its cost counts in the wall time)")
    p.add_argument("--no-guard", action="store_true",
                   help="with --model: use the prediction even where the guard of "
                        "hamnet.scf.predict_guess would fall back to minao")
    p.add_argument("--guard", choices=GUARD_MODES, default="density",
                   help="with --model: the guard's mode (hamnet.scf.guard_guess; default density, "
                        "no Fock build; energy adds three Fock builds)")
    p.add_argument("--no-guess-metrics", action="store_true",
                   help="skip the guess-quality metrics; with --xyz this also skips the untimed, "
                        "tightly converged reference SCF they need (one more SCF per molecule)")
    p.add_argument("--basis", help="PySCF basis for --xyz")
    p.add_argument("--xc", help="functional for --xyz ('HF' for Hartree-Fock)")
    p.add_argument("--charge", type=int, default=0, help="charge for --xyz")
    p.add_argument("--spin", type=int, default=0, help="2S for --xyz")
    p.add_argument("--guesses", nargs="+", default=list(PYSCF_GUESSES),
                   help=f"PySCF baselines (default {' '.join(PYSCF_GUESSES)}; minao always runs)")
    p.add_argument("--conv-tol", type=float, default=1e-9, help="SCF threshold, Ha (default 1e-9)")
    p.add_argument("--max-cycle", type=int, default=100)
    p.add_argument("--grid-level", type=int, help="DFT grid level (default: data's, else PySCF's)")
    p.add_argument("--repeat", type=int, default=1, help="runs per guess; median wall time")
    p.add_argument("--out", required=True, help="results JSON (resumed if it exists)")
    return p


def main(argv=None, *, model=None) -> int:
    """Run the benchmark; ``model`` (an object) replaces loading ``--model`` (for tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.merge:
        try:
            res = merge_results(args.merge)
        except ValueError as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
        _write_json_atomic(Path(args.out), res)
        report(res, Path(args.out))
        return 0
    if not args.model and not args.oracle and model is None:
        parser.error("one of the arguments --model --oracle is required")
    guesses = [DEFAULT_GUESS] + [g for g in dict.fromkeys(args.guesses) if g != DEFAULT_GUESS]
    unknown = [g for g in guesses if g not in PYSCF_GUESSES]
    if unknown:
        raise SystemExit(f"unknown --guesses {unknown}; choose from {list(PYSCF_GUESSES)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    if args.data:
        meta, n, items = dataset_molecules(args.data, args.split, args.part, args.indices)
        xc, basis = meta["xc"], meta["basis"]
        grid_level = args.grid_level if args.grid_level is not None else meta.get("grid_level")
        source = {"data": str(Path(args.data).resolve()), "split": args.split,
                  "part": args.part, "indices": args.indices}
    else:
        if not args.basis or not args.xc:
            raise SystemExit("--xyz needs --basis and --xc")
        xc, basis, grid_level = args.xc, args.basis, args.grid_level
        n, items = xyz_molecules(args.xyz, basis, args.charge, args.spin)
        source = {"xyz": True, "charge": args.charge, "spin": args.spin}
    xc = None if str(xc).strip().lower() in ("hf", "rhf", "uhf") else xc
    if args.oracle_noise and not args.oracle:
        raise SystemExit("--oracle-noise needs --oracle")
    name = "hamnet" if not args.oracle else (
        f"oracle+noise{args.oracle_noise:g}" if args.oracle_noise else "oracle")
    settings = dict(conv_tol=args.conv_tol, max_cycle=args.max_cycle, grid_level=grid_level)
    if not args.oracle and model is None:
        from hamnet.model import load_model

        model = load_model(args.model)
    if args.average is not None:
        if args.oracle:
            raise SystemExit("--average needs --model")
        from hamnet.symmetry import RotationAveraged

        model = RotationAveraged(model, args.average)
        name = f"hamnet-avg{args.average}"
    provenance = {**source, "xc": xc, "basis": basis, "guesses": guesses, "hamnet": name,
                  "oracle_noise": args.oracle_noise,
                  "model": None if args.oracle else str(args.model), "repeat": args.repeat,
                  "guard": False if (args.oracle or args.no_guard) else args.guard,
                  **({"average": args.average} if args.average is not None else {}),
                  **settings}
    out = Path(args.out)
    res = load_results(out, provenance)
    warmed = False
    for key, mol, fock in tqdm(items, total=n, desc="scf benchmark", unit="mol"):
        if key in res["molecules"]:
            continue
        need_ref = args.oracle or not args.no_guess_metrics
        if fock is None and need_ref:  # --xyz: a tightly converged reference, untimed
            ref_settings = {**settings, "conv_tol": ORACLE_CONV_TOL}
            fock = run_scf(mol, DEFAULT_GUESS, xc=xc, **ref_settings)[1].get_fock()
        f_ref = None if fock is None else np.asarray(fock, dtype=np.float64)
        if args.oracle:
            fock = f_ref
            if args.oracle_noise:
                fock = fock + symmetric_noise(fock.shape[-1], args.oracle_noise)
            f_pred = fock
            hamnet_guess = (lambda f: lambda mf: guess_dm(mf, f))(fock)
        else:
            f_pred = None  # predicted below, untimed
            guard_reports: list = []
            hamnet_guess = model_guess(model, guard=False if args.no_guard else args.guard,
                                       reports=guard_reports)
        if not warmed:  # first-call costs (library set-up, model warm-up) count for nobody
            run_scf(mol, DEFAULT_GUESS, xc=xc, **{**settings, "max_cycle": 1})
            run_scf(mol, hamnet_guess, xc=xc, **{**settings, "max_cycle": 1})
            warmed = True
        if not args.oracle:
            guard_reports.clear()  # the warm-up run above made one
        res["molecules"][key] = benchmark_molecule(
            mol, hamnet_guess, name=name, guesses=guesses, xc=xc, settings=settings,
            repeat=args.repeat,
        )
        if not args.oracle and guard_reports:
            res["molecules"][key]["guard"] = asdict(guard_reports[0])
        if f_ref is not None:
            if f_pred is None:
                f_pred = model.predict(mol)
            res["molecules"][key]["guess_metrics"] = guess_metrics(
                mol, f_pred, f_ref, res["molecules"][key]["runs"][DEFAULT_GUESS]["e_tot"], xc, settings)
        res["summary"] = summarize(res)
        _write_json_atomic(out, res)
    res["summary"] = summarize(res)
    _write_json_atomic(out, res)
    report(res, out)
    s = res["summary"]
    return 0 if s and s["all_energy_ok"] and s["all_converged"] else 1


if __name__ == "__main__":
    sys.exit(main())
