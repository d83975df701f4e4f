"""Small file helpers every layer shares: atomic writes and JSON-safe values.

One way to put a file in place (temp file in the same folder, flush, ``fsync``, ``os.replace``,
then ``fsync`` of the folder) so that a killed process leaves either the old file or the new one,
never half of one. Like pooch, there is one such helper, not one per module.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "atomic_write", "write_json", "clean_json", "fsync_dir"]


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk, so a rename in it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest`` atomically.

    Use it for writers that want a path (``df.write_parquet(tmp)``). On an exception the temp file
    is removed and ``dest`` is untouched.

    Parameters
    ----------
    dest : path-like
        The file to create or replace. Its folder is created when missing.
    fsync : bool, default True
        Flush the temp file and the folder to disk before and after the rename.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if fsync and tmp.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
        if fsync:
            fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(dest: str | os.PathLike, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``dest`` atomically; return ``dest`` as a Path."""
    blob = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(dest, fsync=fsync) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(blob)
    return Path(dest)


def clean_json(obj: Any) -> Any:
    """A JSON-safe copy: NaN/inf -> None, dates -> ISO text, numpy and polars values -> Python.

    Objects with a ``to_dict()`` (test-statistic records, results) are converted through it; polars
    DataFrames become lists of row dicts.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime, dt.time)):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, Path):
        return str(obj)
    mod = type(obj).__module__
    if mod.startswith("polars") and hasattr(obj, "to_dicts"):
        return clean_json(obj.to_dicts())
    if mod.startswith("numpy"):
        if hasattr(obj, "tolist"):
            return clean_json(obj.tolist())
        if hasattr(obj, "item"):
            return clean_json(obj.item())
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return clean_json(obj.to_dict())
    return obj


def write_json(dest: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``clean_json(obj)`` to ``dest`` atomically (strict JSON: no NaN)."""
    text = json.dumps(clean_json(obj), indent=indent, allow_nan=False, sort_keys=False)
    return atomic_write(dest, text + "\n")
