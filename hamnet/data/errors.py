"""Errors of the dataset store. All are ``ValueError`` subclasses with messages that
name the dataset, the record and the problem."""

from __future__ import annotations

from hamnet.errors import HamnetError


class DatasetError(HamnetError, ValueError):
    """A dataset cannot be written or read."""


class UnknownSplitError(DatasetError, KeyError):
    """A split name or part the store does not have (also a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RecordError(DatasetError):
    """A record has a missing, unknown or malformed field."""


class CorruptDatasetError(DatasetError):
    """The store on disk is truncated, damaged, or not a hamnet dataset."""


class SchemaVersionError(DatasetError):
    """The store was written with a schema version this hamnet does not read."""


class IncompleteDatasetError(DatasetError):
    """The store was never finalized (an interrupted ``make``); rerun it to finish."""
