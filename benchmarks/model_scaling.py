"""Predict time and peak memory against molecule size, per backbone (not a test).

Water clusters (:mod:`water_clusters`) of growing size are predicted with the default
hyperparameters of ``hamnet.build_model(backbone=...)`` (def2-SVP, float32), each point in
a fresh subprocess so that its peak memory is its own. A backbone's curve stops at the
first point slower than ``--max-seconds`` or failing (e.g. out of memory).

    OMP_NUM_THREADS=1 python benchmarks/model_scaling.py --backbone so2 --waters 4 10 40 100 200 334
    OMP_NUM_THREADS=1 python benchmarks/model_scaling.py --backbone equivariant --waters 4 10 40

Reported: atoms, AOs, number of pairs that get a block, the time of one ``model.predict``
after a warm-up on a small cluster, and the process's peak resident set size (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from water_clusters import water_cluster  # noqa: E402


def run_point(backbone: str, n_waters: int, device: str) -> dict:
    import numpy as np
    import torch

    from hamnet.model import build_model

    torch.manual_seed(0)
    model = build_model("def2-svp", ["H", "C", "N", "O", "F"], backbone=backbone).to(device).eval()
    model.predict(water_cluster(2, seed=1))  # warm-up
    Z, pos = water_cluster(n_waters)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    F = model.predict((Z, pos))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    cut = model.config.get("pair_cutoff")
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    n_pairs = int(((d < cut).sum() if cut else d.size) - len(Z))
    res = {"backbone": backbone, "atoms": len(Z), "nao": int(F.shape[0]), "pairs_with_blocks": n_pairs,
           "pair_cutoff": cut, "predict_s": seconds, "threads": torch.get_num_threads(), "device": device,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        res["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", nargs="+", default=["so2"])
    p.add_argument("--waters", type=int, nargs="+", default=[4, 10, 40, 100, 200, 334])
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-seconds", type=float, default=60.0, help="stop a curve after a slower point")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)  # backbone n_waters: internal
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(run_point(args._child[0], int(args._child[1]), args.device)))
        return 0
    rows = []
    print("| backbone | atoms | AOs | pairs with blocks | predict s | peak memory MiB |")
    print("|---|---|---|---|---|---|")
    for backbone in args.backbone:
        for n in args.waters:
            cmd = [sys.executable, __file__, "--device", args.device, "--_child", backbone, str(n)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["killed"])[-1]
                print(f"| {backbone} | {3 * n} | | | failed: {tail} | |", flush=True)
                break
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(r)
            mem = r.get("peak_cuda_mib", r["peak_rss_mib"])
            print(f"| {backbone} | {r['atoms']} | {r['nao']} | {r['pairs_with_blocks']:,} | {r['predict_s']:.2f} | "
                  f"{mem:.0f} |", flush=True)
            if r["predict_s"] > args.max_seconds:
                break
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
