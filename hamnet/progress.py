"""Progress output fit for terminals and log files alike.

:func:`progress_bar` is a tqdm bar that is off when ``progress`` is false and, when it is
true, off all the same where stderr is not a terminal (``disable=None``), so a run
redirected to a file writes no carriage-return frames. Long loops also log plain lines
(:class:`hamnet.train.loop`), which is what a log file should hold.

:func:`budget_status` and :func:`budget_name` say how far a training run is through its
budget (``limits.max_steps`` / ``limits.max_minutes``, whichever comes first): the training
bar runs from 0 to 100 % of it, so tqdm's ETA is the time to the end of the budget.
"""

from __future__ import annotations

from typing import Optional

from tqdm import tqdm

__all__ = ["progress_bar", "budget_status", "budget_name"]


def progress_bar(progress: bool = True, **kwargs) -> tqdm:
    """``tqdm(**kwargs)`` shown only if ``progress`` and stderr is a terminal."""
    return tqdm(disable=None if progress else True, **kwargs)


def budget_status(step: int, elapsed_s: float, max_steps: Optional[int], max_minutes: Optional[float]) -> tuple[float, str]:
    """``(fraction of the budget used, label)`` of a run at ``step`` after ``elapsed_s`` of training.

    The fraction is that of the limit nearest to stopping the run (``limits.max_steps`` or
    ``limits.max_minutes``, whichever comes first), in [0, 1]; the label names both, e.g.
    ``"step 120/400, 1.3/2.5 min trained"`` (a limit that is not set shows no total).
    """
    fractions = []
    if max_steps:
        fractions.append(step / max_steps)
    if max_minutes:
        fractions.append(elapsed_s / (60 * max_minutes))
    steps = f"step {step}/{max_steps}" if max_steps else f"step {step}"
    minutes = f"{elapsed_s / 60:.1f}/{max_minutes:g} min trained" if max_minutes else f"{elapsed_s / 60:.1f} min trained"
    return min(max(fractions, default=1.0), 1.0), f"{steps}, {minutes}"


def budget_name(max_steps: Optional[int], max_minutes: Optional[float]) -> str:
    """``"400 steps"``, ``"2.5 min"`` or ``"400 steps or 2.5 min, whichever first"``."""
    parts = ([f"{max_steps} steps"] if max_steps else []) + ([f"{max_minutes:g} min"] if max_minutes else [])
    return " or ".join(parts) + (", whichever first" if len(parts) > 1 else "") if parts else "0 steps"
