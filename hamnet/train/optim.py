"""Optimisation pieces: AdamW, the warmup-then-decay learning rate, and a weight EMA.

The learning rate is a pure function of the step and of the training *progress*
``p = max(step / max_steps, minutes / max_minutes)`` in ``[0, 1]``, so runs limited by
steps or by wall time both decay to ``min_lr_ratio * lr`` at their limit and a resumed
run continues the same curve (the progress is stored in the checkpoint, not in a
scheduler object).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
from torch import nn

__all__ = ["build_optimizer", "learning_rate", "set_learning_rate", "EMA"]


def build_optimizer(params: Iterable[nn.Parameter], optim_cfg) -> torch.optim.AdamW:
    """AdamW with the ``optim`` section's lr, betas and weight decay."""
    return torch.optim.AdamW(
        list(params), lr=optim_cfg.lr, betas=tuple(optim_cfg.betas), weight_decay=optim_cfg.weight_decay
    )


def learning_rate(step: int, progress: float, base_lr: float, schedule_cfg) -> float:
    """Learning rate at optimizer step ``step`` (0-based) and progress ``p`` in [0, 1].

    Linear warmup from ``base_lr / (warmup_steps + 1)`` to ``base_lr`` over
    ``warmup_steps`` steps; afterwards ``cosine``: ``m + (1 - m)(1 + cos(pi p)) / 2``,
    ``linear``: ``1 - (1 - m) p``, ``constant``: ``1`` (times ``base_lr``), with
    ``m = min_lr_ratio``.
    """
    w = schedule_cfg.warmup_steps
    if step < w:
        return base_lr * (step + 1) / (w + 1)
    p = min(max(progress, 0.0), 1.0)
    m = schedule_cfg.min_lr_ratio
    if schedule_cfg.kind == "cosine":
        f = m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule_cfg.kind == "linear":
        f = 1.0 - (1.0 - m) * p
    else:
        f = 1.0
    return base_lr * f


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class EMA:
    """Exponential moving average of a model's floating-point parameters and buffers.

    ``shadow <- d * shadow + (1 - d) * current`` after every optimizer step with the
    warmed-up decay ``d = min(decay, (1 + n) / (10 + n))`` (``n`` updates so far), so
    early averages are not dominated by the random initial weights.

    Parameters
    ----------
    model : nn.Module
    decay : float in [0, 1)
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                s.copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            if k not in self.shadow:
                raise KeyError(f"EMA state has an unknown tensor {k!r}")
            self.shadow[k].copy_(v)


def averaged_state(model: nn.Module, ema: Optional[EMA]) -> dict:
    """The weights to evaluate and ship: the EMA's when there is one, else the model's."""
    return ema.shadow if ema is not None else model.state_dict()
