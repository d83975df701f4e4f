"""What the report says about its context: the download manifest, git, versions, the machine."""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from research import paths

_PACKAGES = ("treadmill-research", "polars", "duckdb", "pyarrow", "numpy", "scipy", "statsmodels", "altair",
             "vl-convert-python", "papermill", "nbclient", "ipykernel", "jupyterlab", "typer", "rich", "pyyaml",
             "dask", "distributed")


def read_manifest(data_dir: Path) -> list[dict]:
    """The download manifest (``manifest.jsonl``), newest record per file, with presence on disk.

    Read here with :mod:`json` rather than through the downloaders: lines that are not JSON objects
    with a ``path`` (a torn last line, a hand edit) are skipped; an ``"event": "ingest"`` line
    annotates the file's download record instead of replacing it (the downloaders' rule).
    """
    path = paths.manifest_path(data_dir)
    if not path.exists():
        return []
    recs: dict[str, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if not isinstance(r, dict) or not isinstance(r.get("path"), str):
            continue
        old = recs.get(r["path"])
        if r.get("event") == "ingest" and old:
            recs[r["path"]] = {**old, **{k: v for k, v in r.items() if k not in ("event", "time")}, "ingest_time": r.get("time")}
        else:
            recs[r["path"]] = dict(r)
    out = list(recs.values())
    for r in out:
        p = Path(r["path"])
        r["present"] = (p if p.is_absolute() else data_dir / p).exists()
    return sorted(out, key=lambda r: str(r.get("path")))


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def metadata(started: dt.datetime, seconds: float, workers: int, executor: str, scheduler: str | None,
              user_data: Path, run_data: Path) -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "created": started.isoformat(timespec="seconds"),
        "git_commit": commit or "not a git checkout",
        "git_dirty": dirty,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "workers": workers,
        "executor": executor if executor != "dask" else f"dask ({scheduler})",
        "data_dir": str(user_data),
        "notebook_data_dir": str(run_data),
        "seconds_before_render": round(seconds, 2),
        "versions": versions,
    }


