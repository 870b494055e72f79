"""``hamnet guess [MOLECULE.xyz] [--model MODEL]``: SCF from the prediction versus from minao.

Runs the SCF twice on the same molecule, once from the model's predicted Fock matrix and
once from PySCF's default ``minao`` guess, and prints cycles, wall time (model prediction
included; one-time set-up costs are paid before either timed run) and the difference of
the final energies, which should be at the level of the convergence threshold. Exit
status 0 when both converge to the same energy, 1 when not, 2 on bad input (a geometry
file ASE cannot read, NaN/inf coordinates, a basis or charge/spin that does not fit).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "molecule", nargs="?", default=None,
        help="geometry file in Angstrom (xyz, or any format ASE reads); default: the example "
        "molecule shipped with hamnet",
    )
    parser.add_argument(
        "--model", default=None, metavar="MODEL",
        help="model file, checkpoint or shipped-model name (default: the shipped model for "
        "the basis and elements; see 'hamnet models')",
    )
    parser.add_argument(
        "--no-guard", action="store_true",
        help="use the prediction even where the guard would fall back to minao",
    )
    parser.add_argument(
        "--guard", choices=("density", "energy"), default="density",
        help="guard mode (hamnet.scf.guard_guess): density (default; spectrum and density "
        "checks, no Fock build) or energy (also compares guess energies; three Fock builds)",
    )
    parser.add_argument(
        "--xc", default=None,
        help="functional of the SCF (default: the model's; 'HF' for Hartree-Fock)",
    )
    parser.add_argument("--charge", type=int, default=0, help="molecular charge (default 0)")
    parser.add_argument(
        "--spin", type=int, default=0, help="2S = N_alpha - N_beta (default 0); >0 runs UKS/UHF"
    )
    parser.add_argument(
        "--basis", default=None, help="PySCF basis (default: the model's; must match it)"
    )
    parser.add_argument(
        "--conv-tol", type=float, default=1e-9, help="SCF energy threshold, Hartree (default 1e-9)"
    )
    parser.add_argument("--max-cycle", type=int, default=100, help="SCF cycle limit (default 100)")
    parser.add_argument(
        "--grid-level", type=int, default=None, help="DFT grid level (default: PySCF's)"
    )


def _load_model(path):
    from hamnet.model import load_model

    return load_model(path)


def _model_for(args):
    """The model named by ``--model``, or the shipped one for the molecule (and its path)."""
    from hamnet.pretrained import EXAMPLE_MOLECULE, default_model

    molecule = args.molecule if args.molecule is not None else str(EXAMPLE_MOLECULE)
    if args.model is not None:
        return _load_model(args.model), molecule
    from hamnet.scf import read_mole

    basis = args.basis or "def2-svp"
    elements = read_mole(molecule, basis, charge=args.charge, spin=args.spin).atom_charges()
    return default_model(basis, elements), molecule


def compare(mol, model, *, xc=None, guard=True, **settings):
    """SCF of ``mol`` from ``model``'s prediction and from minao.

    Returns ``(hamnet_run, minao_run, guard_report)``: two :class:`hamnet.scf.SCFRun`
    and the :class:`hamnet.scf.GuardReport` (``None`` without ``guard``); ``settings``
    go to :func:`hamnet.scf.make_scf` (``conv_tol``, ``max_cycle``, ``grid_level``).
    The guard's cost (three Fock builds with ``guard="energy"``) counts in the hamnet run's
    guess time.
    """
    from hamnet.scf import model_guess, run_scf

    # One-time costs (PySCF's library and grid set-up, the model's first call) are paid
    # once, untimed, so that neither timed run carries them.
    run_scf(mol, "minao", xc=xc, **{**settings, "max_cycle": 1})
    model.predict(mol)
    reports: list = []
    hamnet_run, _ = run_scf(mol, model_guess(model, guard=guard, reports=reports), xc=xc,
                            **settings)
    minao_run, _ = run_scf(mol, "minao", xc=xc, **settings)
    return hamnet_run, minao_run, (reports[0] if reports else None)


def format_report(runs, e_diff: float) -> str:
    """Table of SCF runs (cycles, wall time, energy) and the energy difference."""
    head = f"{'guess':<8} {'cycles':>6}  {'converged':<9} {'wall/s':>8} {'(guess/s)':>10}"
    lines = [head + "  E_tot/Ha"]
    for r in runs:
        lines.append(
            f"{r.guess:<8} {r.cycles:>6}  {'yes' if r.converged else 'NO':<9} {r.wall_s:>8.3f} "
            f"{f'({r.guess_s:.3f})':>10}  {r.e_tot:.10f}"
        )
    lines.append(f"E({runs[0].guess}) - E({runs[1].guess}) = {e_diff:.2e} Ha")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hamnet.scf import MAX_DENSITY_SHIFT, make_scf, read_mole, scf_functional

    model, molecule = _model_for(args)
    xc = args.xc if args.xc is not None else getattr(model, "xc", None)
    basis = args.basis if args.basis is not None else model.basis.basis
    mol = read_mole(molecule, basis, charge=args.charge, spin=args.spin)
    settings = dict(conv_tol=args.conv_tol, max_cycle=args.max_cycle, grid_level=args.grid_level)
    probe = make_scf(mol, xc, **settings)  # names the method; not run
    print(
        f"{molecule}: {mol.natm} atoms, {mol.nao_nr()} AOs ({mol.basis}), "
        f"charge {mol.charge}, spin {mol.spin}, {type(probe).__name__} {scf_functional(probe)}, "
        f"conv_tol {args.conv_tol:.0e} Ha; model {args.model or 'shipped ' + model.shipped_name}",
        flush=True,
    )
    hamnet_run, minao_run, guard = compare(mol, model, xc=xc, guard=False if args.no_guard else args.guard,
                                         **settings)
    e_diff = hamnet_run.e_tot - minao_run.e_tot
    print(format_report([hamnet_run, minao_run], e_diff))
    if guard is not None:
        kept = "kept the prediction" if guard.used == "hamnet" else "fell back to minao"
        if guard.reason == "spectrum":
            why = "a predicted orbital energy lies far below every atom's core levels"
        elif guard.reason == "density":
            why = (f"max |P_hamnet - P_minao| = {guard.density_shift:.3f} electrons "
                   f"({'<=' if guard.used == 'hamnet' else '>'} {MAX_DENSITY_SHIFT})")
        else:
            why = (f"E[hamnet guess] - E[minao after one cycle] = "
                   f"{guard.e_hamnet - guard.e_minao:+.4f} Ha")
        print(f"guard: {why}, {kept} ({guard.seconds:.3f} s, included in the hamnet guess time)")
    ok = hamnet_run.converged and minao_run.converged
    if not ok:
        print("WARNING: an SCF did not converge; raise --max-cycle", file=sys.stderr)
    elif abs(e_diff) > 10 * args.conv_tol:
        print(
            f"WARNING: the energies differ by {abs(e_diff):.2e} Ha, more than 10 x conv_tol; "
            "the two SCFs reached different solutions",
            file=sys.stderr,
        )
        ok = False
    return 0 if ok else 1
