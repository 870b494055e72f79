"""The training loop: ``run(config, run_dir)``.

A run directory holds::

    config.yaml    the resolved config (every default filled in)
    train.log      what happened, with times
    metrics.csv    one row per validation (step, time, lr, train loss, TraceGrad diagnostics ``diag_*``, QH9 metrics)
    learning_curves.png  drawn from metrics.csv at every validation (hamnet.plots)
    last.pt        latest checkpoint, with everything needed to resume
    best.pt        EMA weights with the best validation ``eval.metric``
    split.json     the store and the exact train/val/test record indices of the run
                   (:func:`hamnet.data.splits.write_run_split`)
    eval_test.json the final test metrics (also printed as a table, followed by where the
                   files are, the next commands and a trivial baseline on the same test part)

Running again on the same directory resumes from ``last.pt``: the step count, the
position in the epoch (the same batches are neither repeated nor skipped), AdamW, EMA,
the schedule and the random state continue, and ``metrics.csv`` keeps one row per
validation step. Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes
``last.pt`` and returns with ``status == "interrupted"``.

Training stops at ``limits.max_steps`` optimizer steps or after ``limits.max_minutes``
of training time (wall time, or the process's CPU time with ``limits.clock: cpu``; summed
over resumed sessions; time spent in periodic validation, data generation and the final
test does not count).
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from tqdm import tqdm

import hamnet
from hamnet import graph_keys as GK
from hamnet.atomic import atomic_write, atomic_write_text
from hamnet.basis import OrbitalBasis
from hamnet.data import record_keys as RK
from hamnet.data.splits import SPLIT_FILE, write_run_split
from hamnet.errors import HamnetError
from hamnet.graph import collate, to_device
from hamnet.loss import HamiltonianLoss
from hamnet.metrics import EVAL_ONLY, METRIC_UNITS, format_table
from hamnet.model import build_model, model_from_payload, model_payload
from hamnet.progress import budget_name, budget_status, progress_bar
from hamnet.spectral import SpectralLoss, rotate_lowdin
from hamnet.symmetry import random_rotations, rotate_batch
from hamnet.train import checkpoint as ckpt
from hamnet.train import distributed as D
from hamnet.train.config import ConfigError, TrainConfig, config_diff, load_config
from hamnet.train.data import GraphDataset, check_compatible, resolve_store, run_split, store_elements
from hamnet.train.evaluate import evaluate_model, mean_block_baseline, write_report
from hamnet.train.optim import EMA, averaged_state, build_optimizer, learning_rate, set_learning_rate

__all__ = ["run", "RunResult", "CombinedLoss", "METRIC_COLUMNS", "read_metrics"]


CONFIG_FILE, LOG_FILE, METRICS_FILE = "config.yaml", "train.log", "metrics.csv"
TRAIN_COLUMNS = ["step", "epoch", "elapsed_s", "lr", "train_loss", "train_loss_h", "train_loss_t",
                 "train_loss_eig", "train_loss_density", "structures_per_s"]
METRIC_COLUMNS = [f"val_{k}_{u}" for k, u in METRIC_UNITS.items() if k not in EVAL_ONLY]
HIGHER_IS_BETTER = {"psi_cos"}
FIT_REFERENCE_MAX = 1000  # training molecules used for the per-element diagonal reference


@dataclass
class RunResult:
    """What :func:`run` did."""

    run_dir: Path
    status: str  # "finished" or "interrupted"
    step: int
    elapsed_s: float
    best: dict = field(default_factory=dict)  # {"metric", "value", "step"}
    test: Optional[dict] = None  # test metrics (reporting units), when evaluated
    n_test: int = 0
    model: Optional[torch.nn.Module] = field(default=None, repr=False)  # trained (raw, not EMA) weights


class CombinedLoss(torch.nn.Module):
    """``mae_weight * L_mae + mse_weight * L_mse + eig_weight L_eig + density_weight L_P``:
    ``L_kind`` the TraceGrad loss of that kind (:class:`hamnet.loss.HamiltonianLoss`, balanced
    or fixed), the spectral terms from :mod:`hamnet.spectral` (see LossConfig)."""

    def __init__(self, basis: OrbitalBasis, loss_cfg):
        super().__init__()
        self.parts = []
        for kind, w in (("mae", loss_cfg.mae_weight), ("mse", loss_cfg.mse_weight)):
            if w > 0:
                self.parts.append((w, HamiltonianLoss(basis, loss_cfg.trace_weight, kind, loss_cfg.trace_mode,
                                                               loss_cfg.trace_lambda)))
        # spectral terms (hamnet.spectral): + eig_weight L_eig + density_weight L_P
        self.eig_weight, self.density_weight = float(loss_cfg.eig_weight), float(loss_cfg.density_weight)
        self.spectral = SpectralLoss(int(loss_cfg.eig_virtual)) if loss_cfg.spectral else None

    def forward(self, out: dict, batch: dict) -> dict:
        total, lh, lt = 0.0, 0.0, 0.0
        for w, fn in self.parts:
            r = fn(out, batch)
            total = total + w * r[GK.LOSS]
            lh = lh + w * r[GK.LOSS_H]
            lt = lt + w * r[GK.LOSS_T]
        spectral = {}
        if self.spectral is not None:
            spectral = self.spectral(out, batch)  # unweighted, Hartree / dimensionless
            total = total + self.eig_weight * spectral[GK.LOSS_EIG] + self.density_weight * spectral[GK.LOSS_DENSITY]
            spectral = {k: v.detach() for k, v in spectral.items()}
        return {GK.LOSS: total, GK.LOSS_H: lh, GK.LOSS_T: lt, **spectral}


# ---- logging and files ---------------------------------------------------------------------


class _RunLog:
    """``train.log`` of the run in progress, echoed to stdout (above any progress bar).

    The file gets every line whatever the ``logging`` configuration of the program (the
    library leaves logger state alone); without an open run (other ranks) lines go to
    the ``hamnet.train`` logger only.
    """

    def __init__(self):
        self._fh = None

    def open(self, path: Path) -> None:
        self._fh = open(path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _emit(self, level: int, fmt: str, *args) -> None:
        msg = fmt % args if args else fmt
        if self._fh is None:
            logging.getLogger("hamnet.train").log(level, msg)
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._fh.write(f"{stamp} {logging.getLevelName(level)} {msg}\n")
        self._fh.flush()
        tqdm.write(msg)

    def info(self, fmt: str, *args) -> None:
        self._emit(logging.INFO, fmt, *args)

    def warning(self, fmt: str, *args) -> None:
        self._emit(logging.WARNING, fmt, *args)


log = _RunLog()


def read_metrics(run_dir) -> list[dict]:
    """Rows of ``metrics.csv`` (values as strings), oldest first; [] if absent."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def diag_columns(model) -> list:
    """TraceGrad diagnostics of ``metrics.csv`` (none without TraceGrad): ``diag_trace_ratio``,
    the training window's ``L_T / L_H``, and ``diag_v_over_f_<layer>`` / ``diag_update_over_f_<layer>``,
    ``|v| / |f|`` and ``|g(v)| / |f|`` of each TraceGrad in the window's last step."""
    if not getattr(model, "tracegrad", False) or not hasattr(model, "_tracegrad_modules"):
        return []
    names = list(model._tracegrad_modules())
    return ["diag_trace_ratio"] + [f"diag_{k}_{n}" for k in ("v_over_f", "update_over_f") for n in names]


def _rewrite_metrics(run_dir: Path, keep_until_step: int, columns=()) -> None:
    """Drop rows after ``keep_until_step`` (written after the checkpoint we resume from)."""
    rows = [r for r in read_metrics(run_dir) if int(r["step"]) <= keep_until_step]

    def write(fh):
        w = csv.DictWriter(fh, fieldnames=TRAIN_COLUMNS + list(columns) + METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)

    atomic_write(run_dir / METRICS_FILE, write, binary=False)


def _append_metrics(run_dir: Path, row: dict, columns=()) -> None:
    path = run_dir / METRICS_FILE
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TRAIN_COLUMNS + list(columns) + METRIC_COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


# ---- signals -------------------------------------------------------------------------------


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps; a second Ctrl-C aborts."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("received %s: stopping after this step and saving a checkpoint "
                    "(press Ctrl-C again to abort without saving)", signal.Signals(signum).name)

    def __enter__(self):
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread: no signal handling
            self._old = {}
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


# ---- the run -------------------------------------------------------------------------------


def _resolve_run_dir(cfg: TrainConfig, run_dir) -> Path:
    if run_dir is None:
        run_dir = cfg.run_dir or "runs/hamnet"
    return Path(run_dir).expanduser()


def _prepare_config(cfg: TrainConfig, run_dir: Path) -> tuple[TrainConfig, Optional[dict]]:
    """Config to run with and the resume payload (None for a fresh run)."""
    last = run_dir / ckpt.LAST
    if not last.exists():
        return cfg, None
    payload = ckpt.read_checkpoint(last, need_train_state=True)
    saved = load_config(payload["checkpoint"]["config"])
    diff = config_diff(saved, cfg)
    if diff:
        raise ConfigError(
            f"{run_dir} holds a run with a different config (keys {', '.join(diff)}); resume it with the "
            f"same config (only 'limits', 'eval' and 'device' may change) or choose a new run_dir"
        )
    if saved.limits.clock != cfg.limits.clock:
        raise ConfigError(
            f"{run_dir} was trained with limits.clock={saved.limits.clock}; its time budget is counted "
            f"on that clock, so resume it with limits.clock={saved.limits.clock} or choose a new run_dir"
        )
    merged = copy.deepcopy(saved)
    merged.limits, merged.eval, merged.device = cfg.limits, cfg.eval, cfg.device
    merged.run_dir = str(run_dir)
    return merged, payload


def run(config: Union[TrainConfig, dict, str, None] = None, run_dir=None, *, progress: bool = True,
        evaluate_test: bool = True) -> RunResult:
    """Train (or resume) a model as ``config`` says; returns a :class:`RunResult`.

    Parameters
    ----------
    config : TrainConfig, mapping, YAML path, or None for the built-in default job
    run_dir : path, optional
        Overrides ``config.run_dir``; reruns on the same directory resume.
    progress : bool
        Progress bars (rank 0 only; off anyway where stderr is not a terminal), including
        those of generating a recipe's store. Plain progress lines go to ``train.log``
        and stdout every ``eval.every_steps // 5`` steps either way.
    evaluate_test : bool
        After training, evaluate ``best.pt`` on the test part, print the table and write
        ``eval_test.json``.
    """
    cfg = load_config(config)
    run_dir = _resolve_run_dir(cfg, run_dir)
    env = D.init_distributed(cfg.device)
    try:
        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        D.barrier(env)
        cfg, resume = _prepare_config(cfg, run_dir)
        cfg.run_dir = str(run_dir)
        if env.is_main:
            log.open(run_dir / LOG_FILE)
            atomic_write_text(run_dir / CONFIG_FILE, cfg.to_yaml())
        return _Trainer(cfg, run_dir, env, resume, progress and env.is_main).train(evaluate_test)
    finally:
        log.close()
        D.shutdown_distributed(env)


def _init_model(source: str):
    """The model ``model.init_from`` names (file, checkpoint or shipped name), or a clear error."""
    from hamnet.model import load_model

    try:
        return load_model(source)
    except HamnetError as exc:
        raise ConfigError(f"model.init_from: {exc}") from exc


class _Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, env: D.DistEnv, resume: Optional[dict], progress: bool):
        self.cfg, self.run_dir, self.env, self.progress = cfg, run_dir, env, progress
        self.dtype = torch.float64 if cfg.precision == "float64" else torch.float32
        # -- data (rank 0 generates a recipe store; the others wait, then open it)
        if env.is_main:
            self.ds = resolve_store(cfg.data, progress=progress)
        D.barrier(env)
        if not env.is_main:
            self.ds = resolve_store(cfg.data, make=False)
        meta = self.ds.metadata
        self.split_name, self.parts = run_split(self.ds, cfg.split, cfg.seed,
                                                cfg.data.exclude_unconverged)
        self.train_idx, val_idx = self.parts[cfg.split.train], self.parts[cfg.split.val]
        if not self.train_idx:
            raise ConfigError(f"split {self.split_name!r}/{cfg.split.train} of {self.ds.path} is empty")
        if env.is_main:  # the exact indices, for `hamnet data info --runs` and eval's overlap check
            write_run_split(run_dir, self.ds.path, self.split_name,
                            {"train": self.train_idx, "val": val_idx, "test": self.parts[cfg.split.test]})
        self.val_idx = val_idx[: cfg.eval.max_val] if cfg.eval.max_val else val_idx
        init = None
        if resume is None and cfg.model["init_from"] is not None:
            init = _init_model(cfg.model["init_from"])
        if resume is not None:
            elements = resume["elements"]
        elif init is not None:
            elements = list(init.basis.elements)
        elif cfg.model["elements"] == "auto":
            elements = store_elements(self.ds)
        else:
            elements = cfg.model["elements"]
        basis = OrbitalBasis(meta[RK.META_BASIS], elements)
        # -- model (same seed on every rank: identical initial weights)
        torch.manual_seed(cfg.seed)
        self.model = build_model(basis, tracegrad=cfg.model["tracegrad"], xc=meta.get(RK.META_XC),
                                 dtype=self.dtype, **{k: v for k, v in cfg.model_hyperparameters().items()
                                                      if k != "tracegrad"})
        check_compatible(self.model.basis.basis, self.model.xc, self.ds)
        if init is not None:
            check_compatible(init.basis.basis, init.xc, self.ds)
            try:
                self.model.load_state_dict(init.state_dict(), strict=True)
            except RuntimeError as exc:
                raise ConfigError(f"model.init_from: {cfg.model['init_from']} does not fit the configured "
                                  f"model (give the same backbone and hyperparameters): {exc}") from exc
            log.info("fine-tuning from %s", cfg.model["init_from"])
        self.train_set = GraphDataset(self.ds, self.train_idx, basis, self.dtype, cfg.data.cache,
                                      spectral=cfg.loss.spectral)
        if resume is None and init is None and cfg.model["fit_reference"]:
            n = min(len(self.train_set), FIT_REFERENCE_MAX)
            self.model.fit_reference(self.train_set[k] for k in range(n))
        self.model.to(env.device)
        self.loss_fn = CombinedLoss(basis, cfg.loss).to(env.device)
        self.ddp = D.wrap_model(self.model, env)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.ema = EMA(self.model, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
        self.sampler = torch.utils.data.DistributedSampler(
            self.train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=cfg.seed,
            drop_last=False,
        )
        # Rotations for augmentation come from their own generator, saved in checkpoints, so a
        # resumed run draws the same ones (the global RNG is also consumed by DataLoader set-up).
        self.augment_rng = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        self.step, self.epoch, self.batch_in_epoch, self.elapsed, self.samples = 0, 0, 0, 0.0, 0
        self.best = {"metric": cfg.eval.metric, "value": None, "step": None}
        self.last_eval_step = None
        self._evaluator = None
        if resume is not None:
            self._restore(resume)
        elif env.is_main and (run_dir / METRICS_FILE).exists():
            _rewrite_metrics(run_dir, -1, diag_columns(self.model))  # a previous attempt that never checkpointed

    # -- state -------------------------------------------------------------------------

    def _restore(self, payload: dict) -> None:
        ck, ts = payload["checkpoint"], payload["checkpoint"]["train_state"]
        try:
            self.model.load_state_dict(ts["model"], strict=True)
            self.optimizer.load_state_dict(ts["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(ts["ema"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ckpt.CheckpointError(f"{self.run_dir / ckpt.LAST} does not fit this model: {exc}") from exc
        torch.set_rng_state(ts["rng"])
        if "augment_rng" in ts:
            self.augment_rng.set_state(ts["augment_rng"])
        self.step, self.epoch, self.batch_in_epoch = ck["step"], ck["epoch"], ck["batch_in_epoch"]
        self.elapsed, self.samples = ck["elapsed_s"], ck["samples"]
        self.best = dict(ck["best"])
        self.last_eval_step = ck.get("last_eval_step")
        if self.env.is_main:
            _rewrite_metrics(self.run_dir, self.step, diag_columns(self.model))
        log.info("resuming %s from step %d (epoch %d, %.1f min trained)", self.run_dir, self.step,
                 self.epoch, self.elapsed / 60)

    def _info(self, metrics: Optional[dict] = None) -> dict:
        meta = self.ds.metadata
        return {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "elapsed_s": self.elapsed, "samples": self.samples, "best": dict(self.best),
            "last_eval_step": self.last_eval_step, "metrics": dict(metrics or {}),
            "config": self.cfg.to_dict(), "world_size": self.env.world_size,
            "dataset": {"path": str(self.ds.path.resolve()), "recipe": meta.get(RK.META_RECIPE),
                        "xc": meta.get(RK.META_XC), "basis": meta.get(RK.META_BASIS),
                        "count": len(self.ds), "split": self.split_name,
                        "parts": {p: list(v) for p, v in self.parts.items()}},
        }

    def _save_last(self, metrics: Optional[dict] = None) -> None:
        if not self.env.is_main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "rng": torch.get_rng_state(), "augment_rng": self.augment_rng.get_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        ckpt.save_checkpoint(self.run_dir / ckpt.LAST, self.model, weights=averaged_state(self.model, self.ema),
                             kind="last", info=self._info(metrics), train_state=state)

    def _eval_model(self):
        """A second model with the weights to evaluate (EMA average when kept).

        Built from the model file payload, not ``copy.deepcopy``: deep copies of e3nn's
        compiled tensor products gain extra state-dict entries.
        """
        if self._evaluator is None:
            self._evaluator = model_from_payload(model_payload(self.model)).to(self.env.device)
        self._evaluator.load_state_dict(averaged_state(self.model, self.ema), strict=True)
        return self._evaluator.eval()

    # -- limits ----------------------------------------------------------------------------

    def _progress(self) -> float:
        lim = self.cfg.limits
        p = 0.0
        if lim.max_steps:
            p = max(p, self.step / lim.max_steps)
        if lim.max_minutes:
            p = max(p, self.elapsed / (60 * lim.max_minutes))
        return p

    def _limit_reached(self) -> bool:
        lim = self.cfg.limits
        return (lim.max_steps is not None and self.step >= lim.max_steps) or (
            lim.max_minutes is not None and self.elapsed >= 60 * lim.max_minutes)

    # -- validation ------------------------------------------------------------------------

    def _validate(self, window: dict) -> None:
        """Rank 0: metrics on the val part, a metrics.csv row, best.pt and last.pt."""
        self.last_eval_step = self.step
        metrics, n = {}, 0
        if self.env.is_main:
            if self.val_idx:
                metrics, n = evaluate_model(self._eval_model(), self.ds, self.val_idx, self.cfg.eval.batch_size)
            key = self.cfg.eval.metric
            value = metrics.get(key)
            better = value is not None and (
                self.best["value"] is None
                or (value > self.best["value"] if key in HIGHER_IS_BETTER else value < self.best["value"]))
            if better or not self.val_idx:
                self.best = {"metric": key, "value": value, "step": self.step}
                ckpt.save_checkpoint(self.run_dir / ckpt.BEST, self.model,
                                     weights=averaged_state(self.model, self.ema), kind="best",
                                     info=self._info(metrics))
            nw = max(window["n"], 1)
            row = {"step": self.step, "epoch": self.epoch, "elapsed_s": f"{self.elapsed:.2f}",
                   "lr": f"{window['lr']:.6g}", "train_loss": f"{window['loss'] / nw:.6g}",
                   "train_loss_h": f"{window['loss_h'] / nw:.6g}", "train_loss_t": f"{window['loss_t'] / nw:.6g}",
                   **({"train_loss_eig": f"{window['loss_eig'] / nw:.6g}",
                       "train_loss_density": f"{window['loss_density'] / nw:.6g}"}
                      if self.loss_fn.spectral is not None else {}),
                   "structures_per_s": f"{window['structures'] / max(window['seconds'], 1e-9):.3f}"}
            row.update({f"val_{k}_{METRIC_UNITS[k]}": f"{v:.6g}" for k, v in metrics.items()})
            if self.model.tracegrad and hasattr(self.model, "tracegrad_stats"):
                row["diag_trace_ratio"] = f"{window['loss_t'] / max(window['loss_h'], 1e-300):.6g}"
                row.update({f"diag_{k}": f"{v:.6g}" for k, v in self.model.tracegrad_stats().items()})
            _append_metrics(self.run_dir, row, diag_columns(self.model))
            self._save_last(metrics)
            from hamnet.plots import write_learning_curves

            write_learning_curves(self.run_dir)  # learning_curves.png from metrics.csv, atomically
            if metrics:
                log.info("step %d: val (%d mol) H_mae %.1f uHa, eps_occ_mae %.1f uHa, psi_cos %.2f %%%s",
                         self.step, n, metrics["H_mae"], metrics["eps_occ_mae"], metrics["psi_cos"],
                         " (best)" if better else "")
        self.best = D.broadcast_object(self.best, self.env)
        D.barrier(self.env)

    # -- training ----------------------------------------------------------------------------

    @property
    def augment_rotations(self) -> bool:
        r = self.cfg.augment.rotations
        return (not self.model.equivariant) if r is None else bool(r)

    def _train_step(self, batch: dict) -> dict:
        if self.augment_rotations:
            n_mol = len(batch[GK.PTR]) - 1
            R = random_rotations(n_mol, improper=self.cfg.augment.inversion, generator=self.augment_rng)
            batch = rotate_lowdin(rotate_batch(batch, self.model.basis, R), self.model.basis, R)
        batch = to_device(batch, self.env.device)
        lr = learning_rate(self.step, self._progress(), self.cfg.optim.lr, self.cfg.schedule)
        set_learning_rate(self.optimizer, lr)
        out = self.ddp(batch)
        losses = self.loss_fn(out, batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses[GK.LOSS].backward()
        if self.cfg.optim.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {"lr": lr, **{k: float(v.detach()) for k, v in losses.items()}}

    def _loader(self):
        self.sampler.set_epoch(self.epoch)
        return torch.utils.data.DataLoader(self.train_set, batch_size=self.cfg.optim.batch_size,
                                           sampler=self.sampler, collate_fn=collate, num_workers=0)

    def train(self, evaluate_test: bool) -> RunResult:
        cfg, env = self.cfg, self.env
        log.info("hamnet %s: %s, split %r (%d train, %d val), %s/%s, backbone %s, %d parameters, tracegrad=%s, "
                 "rotation augmentation=%s, %s, %d process(es) on %s", hamnet.__version__, self.ds.path,
                 self.split_name, len(self.train_idx), len(self.val_idx), self.model.xc, self.model.basis.basis,
                 self.model.backbone, self.model.num_parameters(), self.model.tracegrad, self.augment_rotations,
                 cfg.precision, env.world_size, env.device)
        status = "finished"
        window = {"n": 0, "loss": 0.0, "loss_h": 0.0, "loss_t": 0.0, "loss_eig": 0.0, "loss_density": 0.0,
                  "lr": 0.0, "structures": 0, "seconds": 0.0}
        # The bar runs 0-100 % of the budget (whichever limit comes first); tqdm's ETA is the
        # time to the end of the budget at the current pace (validation pauses included).
        lim = cfg.limits
        bar = progress_bar(self.progress, total=100, desc=f"train (budget {budget_name(lim.max_steps, lim.max_minutes)})",
                           dynamic_ncols=True,
                           bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed} elapsed, ETA {remaining}{postfix}]")
        bar.update(100 * budget_status(self.step, self.elapsed, lim.max_steps, lim.max_minutes)[0])
        log_every = max(1, cfg.eval.every_steps // 5)  # plain progress lines, for log files
        with _StopRequest() as stop:
            done = self._limit_reached()
            clock = time.process_time if lim.clock == "cpu" else time.perf_counter
            t_mark = clock()
            while not done:
                loader = self._loader()
                for b, batch in enumerate(loader):
                    if b < self.batch_in_epoch:  # resumed mid-epoch: these batches were trained on
                        continue
                    t0 = clock()
                    r = self._train_step(batch)
                    n_mol = int(batch[GK.PTR].numel() - 1) * env.world_size
                    self.step += 1
                    self.batch_in_epoch = b + 1
                    self.samples += n_mol
                    now = clock()
                    self.elapsed += now - t_mark
                    t_mark = now
                    for k, src in (("loss", GK.LOSS), ("loss_h", GK.LOSS_H), ("loss_t", GK.LOSS_T),
                                   ("loss_eig", GK.LOSS_EIG), ("loss_density", GK.LOSS_DENSITY)):
                        window[k] += r.get(src, 0.0)
                    window["n"] += 1
                    window["lr"] = r["lr"]
                    window["structures"] += n_mol
                    window["seconds"] += now - t0
                    fraction, where = budget_status(self.step, self.elapsed, lim.max_steps, lim.max_minutes)
                    bar.set_postfix_str(f"{where}, loss {r[GK.LOSS]:.3g}, lr {r['lr']:.2g}",
                                        refresh=False)  # drawn with the update below, not once more
                    bar.update(100 * fraction - bar.n)
                    if self.step % log_every == 0:
                        log.info("step %d: loss %.4g, lr %.3g; %s (%.0f %% of the budget)", self.step, r[GK.LOSS],
                                 r["lr"], where, 100 * fraction)
                    interrupted, limit = D.any_flag([stop.requested, self._limit_reached()], env)
                    if self.step % cfg.eval.every_steps == 0 or (limit and not interrupted):
                        self._validate(window)
                        window = {k: 0 * v for k, v in window.items()}
                        t_mark = clock()  # validation time is not training time
                    if interrupted:
                        status = "interrupted"
                    if interrupted or limit:
                        done = True
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
            bar.close()
            if status == "interrupted":
                self._save_last()
                log.info("interrupted at step %d; saved %s; rerun the same command to resume",
                         self.step, self.run_dir / ckpt.LAST)
            elif self.last_eval_step != self.step:  # limit already reached when (re)started
                self._validate(window)
        result = RunResult(self.run_dir, status, self.step, self.elapsed, dict(self.best), model=self.model)
        if status == "finished":
            log.info("training finished at step %d (%.1f min, %d structures seen)", self.step,
                     self.elapsed / 60, self.samples)
            if evaluate_test and env.is_main:
                self._test(result)
        D.barrier(env)
        return result

    def _test(self, result: RunResult) -> None:
        test_idx = self.parts[self.cfg.split.test]
        if not test_idx:
            log.info("split %r has no %s part; no test evaluation", self.split_name, self.cfg.split.test)
            return
        best = self.run_dir / ckpt.BEST
        model, info = ckpt.load_checkpoint_model(best, map_location=self.env.device)
        metrics, n = evaluate_model(model, self.ds, test_idx, self.cfg.eval.batch_size, progress=self.progress)
        title = (f"{self.split_name}/{self.cfg.split.test}: {best} (step {info.get('step')}) on {self.ds.path}")
        log.info("%s", format_table(metrics, title=title, n=n))
        base, _ = mean_block_baseline(self.ds, self.train_idx, test_idx, max_train=FIT_REFERENCE_MAX)
        out = self.run_dir / f"eval_{self.cfg.split.test}.json"
        write_report(out, metrics, n,
                     {"checkpoint": str(best), "step": info.get("step"), "data": str(self.ds.path),
                      "split": self.split_name, "part": self.cfg.split.test,
                      "baseline": {"what": "mean training block per element (diagonal) and per ordered "
                                           "element pair (off-diagonal), no network", "metrics": base}})
        log.info("baseline on the same %d molecules (every atom block = its mean over the training records, "
                 "no network): H MAE %.1f uHa, eps_occ MAE %.1f uHa (the model: %.1f and %.1f uHa)", n,
                 base["H_mae"], base["eps_occ_mae"], metrics["H_mae"], metrics["eps_occ_mae"])
        log.info("best model: %s; test metrics: %s; exact split: %s", best, out, self.run_dir / SPLIT_FILE)
        log.info("next: hamnet guess MOL.xyz --model %s   (SCF from the prediction vs minao)", best)
        log.info("      hamnet eval %s --split %s   (metrics, parity_%s.png)", self.run_dir,
                 self.cfg.split.test, self.cfg.split.test)
        log.info("      hamnet report %s   (%s)", self.run_dir, self.run_dir / "report.md")
        result.test, result.n_test = metrics, n
