"""Progress output fit for terminals and log files alike.

:func:`progress_bar` is a tqdm bar that is off when ``progress`` is false and, when it is
true, off all the same where stderr is not a terminal (``disable=None``), so a run
redirected to a file writes no carriage-return frames. Long loops also log plain lines
(:class:`hamnet.train.loop`), which is what a log file should hold.
"""

from __future__ import annotations

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(progress: bool = True, **kwargs) -> tqdm:
    """``tqdm(**kwargs)`` shown only if ``progress`` and stderr is a terminal."""
    return tqdm(disable=None if progress else True, **kwargs)
