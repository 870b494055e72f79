"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

The one helper every hamnet writer uses (model files, checkpoints, predictions, JSON
reports, run configs, metrics tables): write to a hidden temporary file in the same
folder, flush, ``fsync``, then ``os.replace`` over the target. No torch import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, IO, Union

__all__ = ["atomic_write", "atomic_write_text"]

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[IO], None], *, binary: bool = True) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync it, rename it to ``path``.

    Parent folders are created. On any error the temporary file is removed and ``path``
    is left as it was. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(text), binary=False)
