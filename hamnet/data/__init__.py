"""hamnet's dataset store: labeled structures in an LMDB environment per dataset.

>>> from hamnet.data import open_dataset, record_keys as RK
>>> ds = open_dataset("data/md17-water")             # doctest: +SKIP
>>> rec = ds[0]; rec[RK.F].shape, ds.metadata["xc"]  # doctest: +SKIP

Records are dicts keyed by :mod:`hamnet.data.record_keys` (positions in Angstrom, matrices
and energies in Hartree, PySCF AO order). This package imports numpy and lmdb only
(no torch), so it is cheap in data-loading worker processes.
"""

from hamnet.data import keys, record_keys  # keys: the old name of record_keys
from hamnet.data.codec import decode, encode, validate_record
from hamnet.data.errors import (
    CorruptDatasetError,
    DatasetError,
    IncompleteDatasetError,
    RecordError,
    SchemaVersionError,
    UnknownSplitError,
)
from hamnet.data.store import HamiltonianDataset, Store, open_dataset
from hamnet.data.writer import DatasetWriter, write_dataset

__all__ = [
    "record_keys",
    "keys",
    "open_dataset",
    "write_dataset",
    "DatasetWriter",
    "HamiltonianDataset",
    "Store",
    "encode",
    "decode",
    "validate_record",
    "DatasetError",
    "RecordError",
    "CorruptDatasetError",
    "SchemaVersionError",
    "UnknownSplitError",
    "IncompleteDatasetError",
]
