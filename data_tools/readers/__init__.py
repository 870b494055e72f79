"""Import public Hamiltonian datasets into hamnet's store, numbers unchanged.

Formats (``--format``; ``auto`` detects them from the file's own structure):

* ``qh9-sqlite`` - ``QH9Stable.db`` / ``QH9Dynamic_*.db`` (:mod:`.qh9`);
* ``qh9-lmdb``   - QH9's processed LMDB directory (:mod:`.qh9`);
* ``schnorb``    - SchNOrb ``schnorb_hamiltonian_*.db`` ASE databases (:mod:`.schnorb`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tqdm import tqdm

from data_tools.readers.common import ReaderError
from data_tools.readers.qh9 import read_qh9_lmdb, read_qh9_sqlite, sqlite_columns
from data_tools.readers.schnorb import is_ase_sqlite, read_schnorb

READERS = {
    "qh9-sqlite": read_qh9_sqlite,
    "qh9-lmdb": read_qh9_lmdb,
    "schnorb": read_schnorb,
}
FORMATS = ("auto",) + tuple(READERS)


def detect_format(path) -> str:
    """The reader for ``path``, judged from its content; :class:`ReaderError` if none fits."""
    path = Path(path)
    if not path.exists():
        raise ReaderError(f"input {path} does not exist")
    if path.is_dir() or path.name == "data.mdb":
        lmdb_dir = path if path.is_dir() else path.parent
        if not (lmdb_dir / "data.mdb").is_file():
            raise ReaderError(f"{path} is a directory without data.mdb: not a known LMDB")
        from hamnet.data.store import META_KEY, Store

        store = Store(lmdb_dir)
        try:
            if store.get(META_KEY) is not None:
                raise ReaderError(f"{lmdb_dir} is already a hamnet dataset; nothing to import")
        finally:
            store.close()
        return "qh9-lmdb"
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        cols = sqlite_columns(path)
        if cols and {"id", "N", "Z", "pos", "Ham"} <= set(cols):
            return "qh9-sqlite"
        if is_ase_sqlite(path):
            return "schnorb"
        raise ReaderError(
            f"{path} is an SQLite file of unknown schema (tables/columns match neither QH9's "
            "data(id, N, Z, pos, Ham) nor an ASE database)"
        )
    raise ReaderError(
        f"{path} has an unknown format: expected a QH9 SQLite file, QH9's processed LMDB "
        "directory or a SchNOrb ASE database"
    )


def import_dataset(path, out, fmt: str = "auto", *, progress: bool = True, overwrite=False,
                   xc: Optional[str] = None) -> Path:
    """Read ``path`` (format ``fmt``) and write it as a new hamnet dataset at ``out``.

    ``xc`` states the level of theory where the file does not tell it (QH9: "b3lyp5"
    or "b3lyp"; SchNOrb: "pbe" or "hf"); a value that contradicts the file is refused.
    Nothing is left at ``out`` if the input turns out to be malformed.
    """
    from hamnet.data.writer import DatasetWriter

    path = Path(path)
    if fmt not in FORMATS:
        raise ReaderError(f"unknown input format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    elif not path.exists():
        raise ReaderError(f"input {path} does not exist")
    if fmt == "qh9-lmdb" and path.name == "data.mdb":
        path = path.parent
    with DatasetWriter(out, overwrite=overwrite) as writer:
        with tqdm(desc=f"import {path.name}", unit="rec", disable=None if progress else True) as bar:
            meta = READERS[fmt](path, writer.add, progress=bar.update, xc=xc)
        return writer.finalize(meta)


__all__ = ["ReaderError", "detect_format", "import_dataset", "READERS", "FORMATS"]
