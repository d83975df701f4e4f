"""Build small synthetic archive files in the documented data.binance.vision layout."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from research.sources.binance import FileTask


def zip_bytes(member: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return buf.getvalue()


def put(root: Path, task: FileTask, text: str, *, checksum: str | None = None) -> Path:
    """Write ``task``'s zip (one CSV member) and its ``.CHECKSUM`` under ``root``."""
    p = Path(root) / task.archive_path
    p.parent.mkdir(parents=True, exist_ok=True)
    data = zip_bytes(task.name[:-4] + ".csv", text)
    p.write_bytes(data)
    digest = checksum or hashlib.sha256(data).hexdigest()
    (p.parent / (p.name + ".CHECKSUM")).write_text(f"{digest}  {p.name}\n")
    return p
