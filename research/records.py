"""Results records: what a notebook run leaves behind for the report.

A run writes into its output directory::

    record.json          # this module's ResultsRecord, JSON
    tables/<name>.parquet
    figures/<name>.png|.svg|.pdf

The report reads only these records, never a notebook's cells. ``record.json`` is written last and
atomically, so a directory without it is not a result (a failed or partial run).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from research.errors import ResearchError

RECORD_FILE = "record.json"
SCHEMA_VERSION = 1


@dataclass
class Verdict:
    """One tested hypothesis: the effect, its interval, the test and the sample behind it."""

    hypothesis: str
    effect: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    pvalue: float | None = None
    n_events: int | None = None
    test: str = ""
    effect_label: str = ""
    conclusion: str = ""


@dataclass
class ResultsRecord:
    """Everything a report needs from one notebook run.

    Parameters
    ----------
    notebook : str
        Notebook stem, e.g. ``"20-flush-vs-exodus"``.
    title : str
        Human title.
    claim : str
        The article claim tested, in the notebook's own words.
    parameters : dict
        The papermill parameters the run used.
    verdicts : list of Verdict
        One row per hypothesis tested.
    coverage : dict
        Data span/sources used (e.g. ``{"start": ..., "end": ..., "sources": [...]}``).
    synthetic : bool
        True when the data came from the simulated market.
    """

    notebook: str
    title: str
    claim: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    tables: dict[str, str] = field(default_factory=dict)
    figures: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "ResultsRecord":
        d = dict(d)
        d["verdicts"] = [Verdict(**v) for v in d.get("verdicts", [])]
        return cls(**d)


def _clean(obj):
    """JSON-safe: NaN/inf -> None, dates -> ISO strings, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _clean(obj.item())
    return obj


class RecordWriter:
    """Collects tables and figures of one run, then writes ``record.json`` last.

    Examples
    --------
    >>> w = RecordWriter("out/run1", notebook="10-funding-resets", title="Funding resets")
    >>> w.table("events", events_df)            # doctest: +SKIP
    >>> w.figure("caar", chart)                 # doctest: +SKIP
    >>> w.verdict(Verdict("CAAR(0,24) != 0", effect=-0.01, pvalue=0.03))  # doctest: +SKIP
    >>> w.save()                                # doctest: +SKIP
    """

    def __init__(self, out_dir, *, notebook: str, title: str, claim: str = "",
                 parameters: dict | None = None, synthetic: bool = False):
        self.out_dir = Path(out_dir)
        self.record = ResultsRecord(notebook=notebook, title=title, claim=claim,
                                    parameters=dict(parameters or {}), synthetic=synthetic)

    def table(self, name: str, df: pl.DataFrame) -> Path:
        path = self.out_dir / "tables" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        df.write_parquet(tmp)
        os.replace(tmp, path)
        self.record.tables[name] = str(path.relative_to(self.out_dir))
        return path

    def figure(self, name: str, chart, formats=("png", "svg", "pdf")) -> list[Path]:
        from research.plots import export  # plotting is optional for records

        files = export(chart, self.out_dir / "figures" / name, formats=formats)
        self.record.figures[name] = [str(Path(f).relative_to(self.out_dir)) for f in files]
        return files

    def verdict(self, v: Verdict) -> None:
        self.record.verdicts.append(v)

    def note(self, text: str) -> None:
        self.record.notes.append(text)

    def save(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / RECORD_FILE
        tmp = path.with_name(f".{RECORD_FILE}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(self.record.to_dict(), indent=2, sort_keys=False))
        os.replace(tmp, path)
        return path


def load(out_dir) -> ResultsRecord:
    """Read ``record.json`` from a run directory."""
    path = Path(out_dir) / RECORD_FILE
    if not path.exists():
        raise ResearchError(f"{path} does not exist: the run did not finish (see its executed notebook)")
    return ResultsRecord.from_dict(json.loads(path.read_text()))
