"""Ship a trained run as a pretrained model: weights, model card and index in hamnet/pretrained/.

Reads the run's best checkpoint, its test evaluation (``eval_test.json`` from
``hamnet eval RUN --split SPLIT/test``) and the SCF benchmark results of
``benchmarks/scf_speedup.py`` (``--scf NAME=RESULTS.json``, any number), writes the
weights alone (no optimizer state) as ``hamnet/pretrained/<name>.pt``, a model card
``<name>.md`` that quotes those files' numbers, and rewrites ``index.json``
(:func:`hamnet.pretrained.write_index`).

Example::

    python benchmarks/ship_pretrained.py runs/qm9-pretrained --name qm9-b3lyp5-def2svp \\
        --scf "held-out QM9 molecules=runs/scf/qm9-test.json" \\
        --scf "drug-like molecules, 11-16 heavy atoms=runs/scf/large.json"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from hamnet.atomic import atomic_write_text
from hamnet.data import keys as K
from hamnet.data import open_dataset
from hamnet.model import load_model, save_model
from hamnet.pretrained import PRETRAINED_DIR, write_index


def _scf_lines(label: str, res: dict) -> list[str]:
    s = res["summary"]
    hamnet = list(next(iter(res["molecules"].values()))["runs"])[-1]
    w = s["worst"]
    lines = [
        f"- **{label}** ({s['n_molecules']} molecules, `{res['settings']['xc']}`/"
        f"`{res['settings']['basis']}`, conv_tol {res['settings']['conv_tol']:g}): "
        f"{s['cycles'][hamnet]:.2f} cycles from hamnet against {s['cycles']['minao']:.2f} from "
        f"minao" + (f" and {s['cycles']['huckel']:.2f} from huckel" if "huckel" in s["cycles"] else "")
        + f"; ratio against minao {s['achieved']['minao']:.3f}.",
        f"  Wall time per SCF, prediction and guard included: {s['wall_s'][hamnet]:.2f} s "
        f"against {s['wall_s']['minao']:.2f} s. Worst molecule: {Path(w['molecule']).name} "
        f"({w['cycles']} vs {w['cycles_minao']} cycles). Guard fell back to minao on "
        f"{s.get('guard_fallbacks', 0)} molecules. All converged: "
        f"{'yes' if s['all_converged'] else 'NO'}; all energies equal minao's to 1e-7 Ha: "
        f"{'yes' if s['all_energy_ok'] else 'NO'} (max {s['max_abs_dE']:.1e} Ha).",
    ]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="training run directory")
    p.add_argument("--name", required=True)
    p.add_argument("--eval", default=None, help="test evaluation JSON (default RUN/eval_test.json)")
    p.add_argument("--scf", action="append", default=[], metavar="LABEL=JSON")
    p.add_argument("--command", default=None, help="the training command, for the card")
    p.add_argument("--data-note", default=None, help="how the molecules were chosen, for the card")
    p.add_argument("--remark", default="", help="a paragraph for the card's SCF section")
    args = p.parse_args(argv)
    run = Path(args.run)
    model = load_model(run / "best.pt")
    ev = json.loads(Path(args.eval or run / "eval_test.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    with open_dataset(cfg["data"]["path"]) as ds:
        meta = ds.metadata
        n_total = len(ds)
        parts = {k: len(v) for k, v in ds.splits[cfg["split"]["name"]].items()}
        heavy = sorted(int((ds[i][K.Z] > 1).sum()) for i in range(len(ds)))
    out = PRETRAINED_DIR / f"{args.name}.pt"
    save_model(model, out)
    m = ev["metrics"]
    n_params = sum(p.numel() for p in model.parameters())
    counts = {h: heavy.count(h) for h in sorted(set(heavy))}
    scf = []
    for item in args.scf:
        label, _, path = item.partition("=")
        scf += _scf_lines(label, json.loads(Path(path).read_text()))
    source = meta[K.META_SOURCE]
    data_note = args.data_note or (
        "the QM9 indices given to `hamnet data make qh9-stable --ids`" if "qm9_ids" in source
        else f"labeled by `hamnet data make qh9-stable --n {source['n']}`: the first {source['n']} "
        "of the recipe's stratified priority order")
    command = args.command or f"hamnet train benchmarks/configs/qm9-pretrained.yaml --set data.path={cfg['data']['path']}"
    loss = cfg.get("loss", {})
    density_line = (f"; density-matrix MAE {m['density_mae']:.0f} x 1e-6" if "density_mae" in m else "")
    terms = ["MAE + MSE of the blocks"]
    if loss.get("eig_weight"):
        virtual = f" with {loss['eig_virtual']} virtual" if loss.get("eig_virtual") else ""
        terms.append(f"{loss['eig_weight']:g} x occupied orbital-energy MAE (Ha){virtual}")
    if loss.get("density_weight"):
        terms.append(f"{loss['density_weight']:g} x occupied-subspace projector loss")
    training = "Loss: " + ", + ".join(terms)
    if cfg["model"].get("init_from"):
        training += f"; fine-tuned from `{Path(cfg['model']['init_from']).name}` of an H-only run"
    training += f"; best.pt selected by validation `{cfg.get('eval', {}).get('metric', 'H_mae')}`."
    card = f"""# {args.name}: B3LYP(VWN5)/def2-SVP Fock matrices of small organic molecules (H, C, N, O, F)

An equivariant hamnet model (backbone `{cfg['model'].get('backbone', 'equivariant')}`,
TraceGrad {'on' if cfg['model'].get('tracegrad') else 'off'}, {cfg['model'].get('num_channels')} channels,
{cfg['model'].get('num_layers')} layers, {n_params:,} parameters, float32) that predicts the
Kohn-Sham matrix in PySCF's AO order, in Hartree, for PySCF's `dft.RKS(mol, xc="b3lyp5")`
with `basis="def2-svp"`.

## Data
- Molecules: {n_total} QM9 molecules at their QM9 geometries (qm9pack), {data_note}.
  Heavy atoms per molecule: {', '.join(f'{h}: {c}' for h, c in counts.items())}.
- Split: QH9's `random` split over all 130,831 QM9 molecules, restricted to these:
  {parts.get('train', 0)} train, {parts.get('val', 0)} validation, {parts.get('test', 0)} test.

## Level of theory
PySCF {meta.get(K.META_PYSCF_VERSION)} RKS, `xc = "{meta[K.META_XC]}"` (B3LYP with VWN5 correlation,
which is what QH9's PySCF 2.2.1 called `b3lyp`), `def2-svp`, grids level {meta.get(K.META_GRID_LEVEL)},
conv_tol {meta.get(K.META_CONV_TOL)}, F = `mf.get_fock()` at the converged density.
With today's PySCF `xc="b3lyp"` (VWN-RPA) the model still gives a valid guess; hamnet says so once.

## Measured (test part, never trained on)
- MAE of H: {m['H_mae']:.0f} µHa (diagonal blocks {m['H_diag_mae']:.0f}, off-diagonal {m['H_offdiag_mae']:.0f});
  MAE of occupied orbital energies: {m['eps_occ_mae']:.0f} µHa; HOMO {m['homo_mae']:.0f},
  LUMO {m['lumo_mae']:.0f}, gap {m['gap_mae']:.0f} µHa; occupied-orbital similarity psi: {m['psi_cos']:.2f} %{density_line}
  ({ev['n_molecules']} test molecules; `hamnet eval RUN --split random/test`).

## SCF
{chr(10).join(scf) if scf else '- not measured'}
{(chr(10) + args.remark + chr(10)) if args.remark else ''}
The guard of `hamnet.scf.predict_guess` (on by default, no Fock build) starts the SCF from
PySCF's minao guess instead of the prediction when the predicted matrix has an orbital far
below every atom's core level (a spurious state), or when the predicted density differs
from minao's by more than `hamnet.scf.MAX_DENSITY_SHIFT` (1 electron) in any
density-matrix element. `guard="energy"` also compares guess energies (three Fock builds).

## Training command
{training}
```bash
{command}
```

## Licence
Weights: MIT, like hamnet. Training geometries: QM9 (Ramakrishnan et al., Sci. Data 1,
140022 (2014), CC BY 4.0) through qm9pack (MIT); labels computed here with PySCF.
"""
    atomic_write_text(PRETRAINED_DIR / f"{args.name}.md", card)
    write_index(PRETRAINED_DIR)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), its card and {PRETRAINED_DIR / 'index.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
