"""Two CPU processes (gloo, localhost) train with DistributedDataParallel for a few steps.

Each process runs :func:`hamnet.train.loop.run` with the environment torchrun would set
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and writes its final weights;
they must agree across ranks, differ from the initial weights, and equal rank 0's
``last.pt``. The two ranks see different molecules (DistributedSampler), so agreement
means the gradients really were averaged.
"""

from __future__ import annotations

import os

import torch
import torch.multiprocessing as mp

from hamnet.testing import make_store, tiny_config


def _worker(rank: int, world: int, port: int, cfg: dict, run_dir: str, out_dir: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    from hamnet.train.loop import run

    res = run(cfg, run_dir, progress=False, evaluate_test=False)
    torch.save({"step": res.step, "state": res.model.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_ranks_keep_identical_parameters(tmp_path):
    from hamnet.train.checkpoint import read_checkpoint
    from hamnet.train.distributed import free_port

    store = make_store(tmp_path / "water", n=12)
    cfg = tiny_config(store, limits={"max_steps": 3}, eval={"every_steps": 3}, device="cpu")
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    mp.start_processes(_worker, args=(2, free_port(), cfg, str(run_dir), str(out)), nprocs=2,
                       join=True, start_method="spawn")
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 3
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), f"parameter {k} differs between ranks"
    payload = read_checkpoint(run_dir / "last.pt", need_train_state=True)
    ck = payload["checkpoint"]
    assert ck["world_size"] == 2 and ck["samples"] == 3 * 2 * 2  # 3 steps x 2 ranks x batch 2
    trained = ck["train_state"]["model"]
    assert all(torch.equal(trained[k], r0["state"][k]) for k in trained)
    # the weights moved: compare with a fresh model of the same seed
    from hamnet.model import build_model

    torch.manual_seed(0)
    fresh = build_model("sto-3g", [1, 8], xc="hf", **tiny_config(store)["model"]).state_dict()
    moved = [k for k in fresh if fresh[k].is_floating_point() and not torch.equal(fresh[k], trained[k])]
    assert len(moved) >= 20, moved  # (zero-initialized gates etc. may not move in 3 steps)
    # only rank 0 wrote the run directory's files, once
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + the validation at step 3
