"""Records <-> bytes: validation and a fixed, pickle-free binary layout.

Layout of one encoded record (all integers little-endian)::

    8 bytes   magic  b"HNREC01\\n"
    4 bytes   uint32 header length H
    4 bytes   uint32 CRC-32 of header + payload
    H bytes   JSON header {"source_id": str, "arrays": [[key, dtype, shape], ...]}
              plus the record's other text keys (keys.TEXT), each "key": str
    payload   the arrays' raw little-endian bytes, C order, in header order

Only numeric and bool dtypes are accepted, so decoding never runs code. The CRC makes
any flipped or missing byte a :class:`CorruptDatasetError` instead of wrong numbers.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Mapping

import numpy as np

from hamnet.data import record_keys as RK
from hamnet.data.errors import CorruptDatasetError, RecordError

_MAGIC = b"HNREC01\n"
_PREFIX = struct.Struct("<8sII")


def _as_array(rec: Mapping[str, Any], key: str, where: str) -> np.ndarray:
    value = rec[key]
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists etc.
        raise RecordError(f"{where}: field {key!r} is not an array ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise RecordError(f"{where}: field {key!r} has non-numeric dtype {arr.dtype}")
    want = np.dtype(RK.DTYPES[key])
    if want.kind in "iu" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise RecordError(f"{where}: field {key!r} must hold integers")
    out = np.array(arr, dtype=want, order="C")  # (ascontiguousarray would make 0-d 1-d)
    if want.kind == "f" and not np.all(np.isfinite(out)):
        raise RecordError(f"{where}: field {key!r} contains NaN or infinity")
    return out


def validate_record(rec: Mapping[str, Any], where: str = "record") -> dict:
    """Check a record and return it with canonical dtypes (a new dict).

    Raises
    ------
    RecordError
        Missing required key, unknown key, wrong shape, non-finite number, or an
        unconverged SCF (``converged=False``), naming the field.
    """
    if not isinstance(rec, Mapping):
        raise RecordError(f"{where}: a record must be a dict, got {type(rec).__name__}")
    unknown = sorted(set(rec) - set(RK.ALL))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {unknown}; allowed: {list(RK.ALL)}")
    missing = [k for k in RK.REQUIRED if k not in rec]
    if missing:
        raise RecordError(f"{where}: missing required field(s) {missing}")
    sid = rec[RK.SOURCE_ID]
    if not isinstance(sid, str) or not sid:
        raise RecordError(f"{where}: {RK.SOURCE_ID!r} must be a non-empty string")
    out: dict = {RK.SOURCE_ID: sid}
    for key in RK.ALL:
        if key == RK.SOURCE_ID or key not in rec or rec[key] is None:
            continue
        if key in RK.TEXT:
            if not isinstance(rec[key], str) or not rec[key]:
                raise RecordError(f"{where}: {key!r} must be a non-empty string")
            out[key] = rec[key]
            continue
        out[key] = _as_array(rec, key, where)
    z, pos, f = out[RK.Z], out[RK.POS], out[RK.F]
    if z.ndim != 1 or len(z) == 0:
        raise RecordError(f"{where}: {RK.Z!r} must be a non-empty 1-d array, got shape {z.shape}")
    if np.any(z < 1) or np.any(z > 118):
        raise RecordError(f"{where}: {RK.Z!r} holds values outside 1..118: {z.tolist()}")
    if pos.shape != (len(z), 3):
        raise RecordError(f"{where}: {RK.POS!r} must have shape ({len(z)}, 3), got {pos.shape}")
    if f.ndim != 2 or f.shape[0] != f.shape[1] or f.shape[0] == 0:
        raise RecordError(f"{where}: {RK.F!r} must be a square matrix, got shape {f.shape}")
    nao = f.shape[0]
    if RK.S in out and out[RK.S].shape != f.shape:
        raise RecordError(f"{where}: {RK.S!r} has shape {out[RK.S].shape}, {RK.F!r} has {f.shape}")
    if RK.MO_ENERGY in out and out[RK.MO_ENERGY].shape != (nao,):
        raise RecordError(
            f"{where}: {RK.MO_ENERGY!r} must have shape ({nao},), got {out[RK.MO_ENERGY].shape}"
        )
    for key in RK.SCALARS:
        if key in out and out[key].shape != ():
            raise RecordError(f"{where}: {key!r} must be a scalar, got shape {out[key].shape}")
    if RK.NOCC in out and not 0 <= int(out[RK.NOCC]) <= nao:
        raise RecordError(f"{where}: {RK.NOCC!r}={int(out[RK.NOCC])} is outside 0..{nao}")
    return out


def encode(rec: Mapping[str, Any], where: str = "record") -> bytes:
    """Validate ``rec`` and encode it in the layout of this module."""
    rec = validate_record(rec, where)
    arrays = [(k, rec[k]) for k in RK.ALL if k not in RK.TEXT and k in rec]
    header = json.dumps(
        {
            **{k: rec[k] for k in RK.TEXT if k in rec},
            "arrays": [[k, a.dtype.newbyteorder("<").str, list(a.shape)] for k, a in arrays],
        },
        separators=(",", ":"),
    ).encode()
    payload = b"".join(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for _, a in arrays)
    crc = zlib.crc32(payload, zlib.crc32(header))
    return _PREFIX.pack(_MAGIC, len(header), crc) + header + payload


def decode(buf: bytes, where: str = "record") -> dict:
    """Inverse of :func:`encode`: bytes -> record (scalars as Python numbers).

    Raises
    ------
    CorruptDatasetError
        Bad magic, truncated bytes, CRC mismatch or an unreadable header.
    """
    buf = bytes(buf)
    if len(buf) < _PREFIX.size:
        raise CorruptDatasetError(f"{where}: truncated ({len(buf)} bytes)")
    magic, hlen, crc = _PREFIX.unpack_from(buf)
    if magic != _MAGIC:
        raise CorruptDatasetError(f"{where}: not a hamnet record (bad magic {magic!r})")
    body = buf[_PREFIX.size :]
    if len(body) < hlen or zlib.crc32(body) != crc:
        raise CorruptDatasetError(f"{where}: checksum mismatch, the record is damaged or truncated")
    try:
        header = json.loads(body[:hlen])
        specs = header["arrays"]
        rec: dict = {RK.SOURCE_ID: str(header[RK.SOURCE_ID])}
        rec.update({k: str(header[k]) for k in RK.TEXT if k in header})
        offset = hlen
        for key, dtype, shape in specs:
            dt = np.dtype(dtype)
            if dt.hasobject or key not in RK.DTYPES:
                raise ValueError(f"field {key!r} of dtype {dtype}")
            n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            if offset + n > len(body):
                raise ValueError("payload shorter than its header says")
            arr = np.frombuffer(body, dtype=dt, count=n // dt.itemsize if dt.itemsize else 0,
                                offset=offset).reshape(shape)
            offset += n
            arr = arr.astype(dt.newbyteorder("="), copy=True)
            rec[key] = arr.item() if key in RK.SCALARS else arr
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDatasetError(f"{where}: unreadable record header ({exc})") from exc
    if offset != len(body):
        raise CorruptDatasetError(f"{where}: {len(body) - offset} unexpected trailing bytes")
    return rec
