"""What exact rotational symmetry buys and costs: trained models, raw and rotation-averaged.

For each checkpoint (e.g. the TraceGrad model and the unconstrained PET model trained for
the same wall time), on the test part of the run's split:

* QH9 metrics (MAE of H and of the occupied orbital energies, ...) of the raw model and
  of :class:`hamnet.symmetry.RotationAveraged` at each ``--orders`` grid;
* the equivariance error (:func:`hamnet.symmetry.equivariance_error`, ``--rotations``
  random rotations of the first ``--symmetry-molecules`` test structures), raw and averaged,
  and the grid spread of the averaged models;
* inference time per structure (``predict_batch`` in batches of ``--batch-size``, after a
  warm-up), raw and averaged.

Writes a JSON (``--out``), a chart next to it (``OUT.png``: equivariance error per block
type and time per structure against the number of rotations) and prints a markdown table.
SCF cycles come from ``benchmarks/scf_speedup.py --model CKPT [--average ORDER]``.

    OMP_NUM_THREADS=1 python benchmarks/symmetry_benchmark.py runs/sym-water-tg runs/sym-water-pet \\
        --orders 3 5 --out runs/symmetry-water.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hamnet.data import keys as DK
from hamnet.data import open_dataset
from hamnet.symmetry import RotationAveraged, equivariance_error
from hamnet.train.checkpoint import find_checkpoint, load_checkpoint_model
from hamnet.train.evaluate import evaluate_model


def time_per_structure(model, mols, batch_size: int) -> float:
    model.predict_batch(mols[:batch_size])  # warm-up
    t0 = time.perf_counter()
    for s in range(0, len(mols), batch_size):
        model.predict_batch(mols[s : s + batch_size])
    return (time.perf_counter() - t0) / len(mols)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories or checkpoints")
    p.add_argument("--orders", nargs="+", type=int, default=[3, 5], help="Lebedev degrees of the averaging grids")
    p.add_argument("--rotations", type=int, default=8, help="random rotations for the equivariance error")
    p.add_argument("--symmetry-molecules", type=int, default=20, help="test structures for the equivariance error")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", required=True, help="JSON file")
    args = p.parse_args(argv)
    results = {}
    for run in args.runs:
        path = find_checkpoint(run)
        model, info = load_checkpoint_model(path)
        model.eval()
        ds = open_dataset(info["dataset"]["path"])
        idx = list(info["dataset"]["parts"]["test"])
        mols = [(rec[DK.Z], rec[DK.POS]) for rec in (ds[i] for i in idx)]
        sym_mols = mols[: args.symmetry_molecules]
        variants = [("raw", model)] + [(f"avg{o}", RotationAveraged(model, o)) for o in args.orders]
        res = {"checkpoint": str(path), "backbone": model.backbone, "tracegrad": model.tracegrad,
               "parameters": model.num_parameters(), "test_structures": len(idx), "variants": {}}
        for name, m in variants:
            metrics, n = evaluate_model(m, ds, idx, args.batch_size)
            sym = equivariance_error(m, sym_mols, args.rotations)
            row = {"metrics": metrics, "symmetry": sym,
                   "seconds_per_structure": time_per_structure(m, mols, args.batch_size)}
            if name != "raw":
                row["n_rotations"] = m.n_rotations
                row["spread"] = m.spread(sym_mols)
            res["variants"][name] = row
            print(f"{run} {name}: H_mae {metrics['H_mae']:.1f} uHa, eps_occ_mae {metrics['eps_occ_mae']:.1f} uHa, "
                  f"equivariance error mean {sym['mean_uHa']:.4g} / max {sym['max_uHa']:.4g} uHa, "
                  f"eps_occ {sym['eps_occ']['mean_uHa']:.4g} uHa, {row['seconds_per_structure'] * 1e3:.2f} ms/structure",
                  flush=True)
        results[run] = res
        meta = ds.metadata
        data_label = (f"{Path(ds.path).name} ({meta.get(DK.META_RECIPE)}, {meta.get(DK.META_XC)}/{meta.get(DK.META_BASIS)}), "
                      f"test part: {len(idx)} structures, error on {len(sym_mols)} x {args.rotations} rotations")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)
    from hamnet.plots import write_symmetry_chart

    chart = write_symmetry_chart(results, out, data_label)  # error and cost against averaging rotations
    print("\n| model | grid (rotations) | H MAE uHa | eps_occ MAE uHa | equiv. error mean / max uHa | "
          "eps_occ change uHa | grid spread mean uHa | ms / structure |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for run, res in results.items():
        for name, row in res["variants"].items():
            grid = "none" if name == "raw" else f"Lebedev {name[3:]} ({row['n_rotations']})"
            spread = f"{row['spread']['mean_uHa']:.4g}" if "spread" in row else ""
            sym = row["symmetry"]
            print(f"| {res['backbone']}{'+TG' if res['tracegrad'] else ''} | {grid} | {row['metrics']['H_mae']:.1f} | "
                  f"{row['metrics']['eps_occ_mae']:.1f} | {sym['mean_uHa']:.3g} / {sym['max_uHa']:.3g} | "
                  f"{sym['eps_occ']['mean_uHa']:.3g} | {spread} | {row['seconds_per_structure'] * 1e3:.2f} |")
    print(f"wrote {out} and {chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
