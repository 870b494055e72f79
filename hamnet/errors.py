"""hamnet's exceptions: one base, :class:`HamnetError`, for every error a user can cause.

Each error also derives from the built-in exception it refines (``ValueError`` for bad
values, ``FileNotFoundError`` for a missing file), so ``except ValueError`` keeps
working. ``hamnet.cli.main`` catches :class:`HamnetError` once and prints
``hamnet CMD: error: <message>`` (exit status 2); anything else is a bug and keeps its
traceback. This module imports nothing, so every layer (the torch-free store included)
can use it.
"""

from __future__ import annotations

__all__ = ["HamnetError", "MissingFileError", "ConfigError", "GraphError"]


class HamnetError(Exception):
    """Base of every hamnet error caused by input (files, configs, molecules, options)."""


class MissingFileError(HamnetError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class ConfigError(HamnetError, ValueError):
    """A config key or value (run config or model hyperparameter) that is not allowed;
    the message names the key path and what is allowed."""


class GraphError(HamnetError, ValueError):
    """A molecule hamnet cannot use: an unreadable geometry file, no atoms, NaN/inf
    coordinates, atoms too close, an element the model lacks (the message says which)."""
