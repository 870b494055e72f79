"""Training checkpoints: a model file plus the state needed to resume.

A checkpoint *is* a hamnet model file (:func:`hamnet.model.model_payload`: format
version, hamnet version, basis, elements, xc, dtype, hyperparameters, weights), so
``hamnet.model.load_model("run/best.pt")`` and ``hamnet guess --model run/best.pt`` work
on it directly. Its weights are the ones to predict with (the EMA average when the run
keeps one). Under the key ``"checkpoint"`` it adds::

    format, version          "hamnet-checkpoint", CHECKPOINT_VERSION
    kind                     "last" or "best"
    step, epoch, elapsed_s   optimizer steps, passes over the training set, training seconds
    samples                  molecules seen by all processes
    best                     {"metric", "value", "step"} of the best validation so far
    metrics                  validation metrics at this step (may be empty)
    config                   the resolved run config (TrainConfig.to_dict())
    dataset                  {"path", "recipe", "xc", "basis", "count", "split"}
    train_state              ("last" only) raw weights, AdamW state, EMA state, RNG state

Files are written atomically (temporary file, fsync, rename); reading a truncated,
foreign or newer file raises :class:`CheckpointError` saying which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch

from hamnet.errors import HamnetError, MissingFileError
from hamnet.model import (
    FORMAT as MODEL_FORMAT,
    HamiltonianModel,
    ModelFileError,
    atomic_torch_save,
    check_version,
    model_from_payload,
    model_payload,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "save_checkpoint",
    "read_checkpoint",
    "load_checkpoint_model",
    "find_checkpoint",
]

CHECKPOINT_FORMAT = "hamnet-checkpoint"
CHECKPOINT_VERSION = 1
LAST, BEST = "last.pt", "best.pt"


class CheckpointError(HamnetError, ValueError):
    """A checkpoint that is missing, truncated, foreign, or from a newer hamnet."""


def save_checkpoint(
    path: Union[str, os.PathLike],
    model: HamiltonianModel,
    *,
    weights: Optional[dict] = None,
    kind: str = "last",
    info: dict,
    train_state: Optional[dict] = None,
) -> None:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : path of the file (``last.pt`` or ``best.pt`` in the run directory)
    model : the (unwrapped) model; its architecture, basis, xc and dtype are recorded
    weights : state dict to store as the model's weights (default: ``model``'s own);
        pass the EMA average to ship the averaged model
    kind : "last" or "best"
    info : step, epoch, elapsed_s, samples, best, metrics, config, dataset
    train_state : what resuming needs (raw weights, optimizer, EMA, RNG); "last" only
    """
    payload = model_payload(model)
    if weights is not None:
        payload["state_dict"] = {k: v.detach().cpu().clone() for k, v in weights.items()}
    ck = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, **info}
    if train_state is not None:
        ck["train_state"] = _to_cpu(train_state)
    payload["checkpoint"] = ck
    atomic_torch_save(payload, path)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def read_checkpoint(path: Union[str, os.PathLike], *, need_train_state: bool = False) -> dict:
    """Load and check a checkpoint's payload (a dict; see the module docstring).

    Parameters
    ----------
    need_train_state : bool
        Require the resume state (a ``last`` checkpoint).

    Raises
    ------
    FileNotFoundError
        No such file.
    CheckpointError
        Truncated/corrupted, not a hamnet checkpoint, a newer version, or no resume state.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for truncated or foreign files
        raise CheckpointError(
            f"{path} cannot be read as a hamnet checkpoint (truncated, corrupted or not a torch file): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a hamnet model or checkpoint (no format marker)")
    ck = payload.get("checkpoint")
    if ck is None:
        if need_train_state:
            raise CheckpointError(f"{path} is a hamnet model file without training state; cannot resume from it")
        return payload
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has a foreign 'checkpoint' section (not {CHECKPOINT_FORMAT!r})")
    check_version(ck.get("version"), CHECKPOINT_VERSION, "checkpoint", str(path), CheckpointError)
    if need_train_state and "train_state" not in ck:
        raise CheckpointError(f"{path} is a {ck.get('kind')!r} checkpoint without resume state; resume from last.pt")
    return payload


def load_checkpoint_model(path: Union[str, os.PathLike], map_location="cpu") -> tuple[HamiltonianModel, dict]:
    """``(model with the checkpoint's shipped weights, checkpoint info or {})``.

    Accepts a checkpoint or a plain model file written by :func:`hamnet.model.save_model`.
    """
    payload = read_checkpoint(path)
    try:
        model = model_from_payload(payload, source=str(path))
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from exc
    return model.to(map_location), payload.get("checkpoint", {})


def find_checkpoint(path: Union[str, os.PathLike]) -> Path:
    """A checkpoint file from a file path or a run directory (``best.pt``, else ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise MissingFileError(f"{path} holds no {BEST} or {LAST}; is it a hamnet run directory?")
    if not path.exists():
        raise MissingFileError(f"no run directory or checkpoint at {path}")
    return path
