"""Speed, size and memory of the Hamiltonian model on a QM9-size molecule (not a test).

For TraceGrad on and off, with the default hyperparameters of ``hamnet.build_model``:
forward and forward+backward time per molecule, parameter count, and peak memory.
Each configuration runs in a fresh subprocess so that peak-memory numbers do not mix.
``--backbone`` compares backbones side by side (e.g. ``equivariant so2``).

    OMP_NUM_THREADS=1 python benchmarks/model_speed.py                 # CPU, 1 thread
    OMP_NUM_THREADS=1 python benchmarks/model_speed.py --backbone equivariant so2
    python benchmarks/model_speed.py --device cuda --batch-size 1 8    # GPU

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` during the timed loops; on CPU, the
process's peak resident set size, and its growth over the timed loops (peak RSS minus
the RSS after the model was built and warmed up).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# Ethyl alaninate, C5H11NO2: 19 atoms, 8 heavy atoms (QM9 molecules have up to 9).
SMILES = "CC(N)C(=O)OCC"


def geometry(smiles: str, seed: int = 7):
    """``(Z, pos Angstrom)`` of an RDKit ETKDG + MMFF conformer (deterministic seed)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError(f"RDKit could not embed {smiles}")
    AllChem.MMFFOptimizeMolecule(mol)
    Z = [a.GetAtomicNum() for a in mol.GetAtoms()]
    pos = mol.GetConformer().GetPositions()
    return Z, pos


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(tracegrad: bool, device: str, batch_size: int, repeat: int, dtype: str,
            backbone: str = "equivariant") -> dict:
    import numpy as np
    import torch

    from hamnet import graph_keys as GK
    from hamnet.graph import collate, molecule_graph, to_device
    from hamnet.loss import HamiltonianLoss
    from hamnet.model import build_model

    torch.manual_seed(0)
    Z, pos = geometry(SMILES)
    model = build_model("def2-svp", ["H", "C", "N", "O", "F"], tracegrad=tracegrad, dtype=getattr(torch, dtype),
                        backbone=backbone)
    model.to(device).train()
    rng = np.random.default_rng(0)
    nao = model.basis.layout(Z).nao
    F = rng.normal(size=(nao, nao))
    graph = molecule_graph(Z, pos, basis=model.basis, fock=F + F.T)
    batch = to_device(collate([graph] * batch_size), device)
    loss_fn = HamiltonianLoss(model.basis).to(device)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def forward():
        with torch.no_grad():
            model(batch)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch)[GK.LOSS].backward()

    for fn in (forward, forward_backward):  # warm-up (e3nn code generation, CUDA kernels)
        fn()
        fn()
    sync()
    rss0 = _rss_mib()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = {}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        sync()
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        sync()
        times[name] = (time.perf_counter() - t0) / repeat / batch_size
    res = {
        "backbone": backbone,
        "tracegrad": tracegrad,
        "device": device if not device.startswith("cuda") else torch.cuda.get_device_name(),
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "n_atoms": len(Z),
        "nao": nao,
        "batch_size": batch_size,
        "parameters": model.num_parameters(),
        "forward_ms_per_mol": 1e3 * times["forward"],
        "forward_backward_ms_per_mol": 1e3 * times["forward_backward"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0,
    }
    if device.startswith("cuda"):
        res["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--backbone", nargs="+", default=["equivariant"], help="backbones to compare (default equivariant)")
    p.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)  # tracegrad batch_size backbone: internal
    args = p.parse_args(argv)
    if args._child:
        tg, bs, backbone = args._child
        print(json.dumps(run_one(tg == "1", args.device, int(bs), args.repeat, args.dtype, backbone)))
        return 0
    rows = []
    for bs in args.batch_size:
        for backbone in args.backbone:
            for tg in (True, False):
                cmd = [sys.executable, __file__, "--device", args.device, "--dtype", args.dtype,
                       "--repeat", str(args.repeat), "--_child", "1" if tg else "0", str(bs), backbone]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                r = rows[-1]
                print(
                    f"{backbone:11} tracegrad={str(r['tracegrad']):5} batch={bs:2d} params={r['parameters']:,} "
                    f"forward={r['forward_ms_per_mol']:.1f} ms/mol "
                    f"forward+backward={r['forward_backward_ms_per_mol']:.1f} ms/mol "
                    f"peak_rss={r['peak_rss_mib']:.0f} MiB (+{r['rss_growth_mib']:.0f})"
                    + (f" peak_cuda={r['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in r else ""),
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
