"""Results records: what a notebook run leaves behind for the report.

A run writes into its output directory::

    record.json          # this module's ResultsRecord, JSON
    tables/<name>.parquet
    figures/<name>.vl.json|.svg   # spec + SVG; .png/.pdf rendered on demand (research.plots.render)

The report reads only these records, never a notebook's cells. ``record.json`` is written last and
atomically, so a directory without it is not a result (a failed or partial run).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from research.errors import ResearchError
from research.fileio import atomic_path, clean_json, write_json

RECORD_FILE = "record.json"
SCHEMA_VERSION = 1


@dataclass
class Verdict:
    """One tested hypothesis: the effect, its interval, the test and the sample behind it.

    Inference fields (#12): ``pvalue`` (alias ``p_value``; either name may be passed) comes from
    ``test``; ``ci_low``/``ci_high`` come from the same method (``ci_method``), so the CI excludes
    ``null`` exactly when ``pvalue < alpha``; ``q_value`` is the Benjamini-Hochberg q-value across
    the p-values of the record (filled by :func:`write_result` / :func:`with_qvalues`); ``size`` is
    the primary test's empirical rejection rate on placebo draws (None until calibrated);
    ``p_calibrated`` a placebo-calibrated p-value where one exists; ``primary`` marks the one test a
    hypothesis declares primary; ``mde`` the smallest effect (in ``mde_label``'s unit) the primary
    test detects in 80 % of draws with the events it had (:mod:`research.hypotheses.power`). A test
    that could not run has no p-value and no CI.
    """

    hypothesis: str
    effect: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    pvalue: float | None = None
    n_events: int | None = None
    test: str = ""
    effect_label: str = ""
    conclusion: str = ""
    q_value: float | None = None
    size: float | None = None
    primary: bool = False
    ci_method: str = ""
    null: float = 0.0
    alpha: float = 0.05
    p_calibrated: float | None = None
    n_placebo: int | None = None
    p_value: float | None = None
    mde: float | None = None
    mde_label: str = ""

    def __post_init__(self):
        # one value under two names (the claims modules may use either)
        if self.pvalue is None and self.p_value is not None:
            self.pvalue = self.p_value
        self.p_value = self.pvalue

    @property
    def ci_agrees(self) -> bool:
        """True when "CI excludes ``null``" and "``pvalue < alpha``" agree (or either is missing)."""
        from research.stats import ci_agrees

        return ci_agrees(self.pvalue, self.ci_low, self.ci_high, self.null, self.alpha)


#: Verdict fields in table order (:func:`verdicts_frame`)
VERDICT_COLUMNS = {"hypothesis": pl.String, "primary": pl.Boolean, "effect": pl.Float64, "ci_low": pl.Float64,
                   "ci_high": pl.Float64, "null": pl.Float64, "pvalue": pl.Float64, "q_value": pl.Float64,
                   "size": pl.Float64, "p_calibrated": pl.Float64, "n_placebo": pl.Int64, "mde": pl.Float64,
                   "mde_label": pl.String, "n_events": pl.Int64,
                   "test": pl.String, "ci_method": pl.String, "effect_label": pl.String, "conclusion": pl.String}


def with_qvalues(verdicts: list) -> list:
    """Set every verdict's ``q_value``: Benjamini-Hochberg across the finite p-values of ``verdicts``.

    One family per record (a notebook's verdicts); rows without a p-value keep ``q_value=None``.
    Returns the same list (changed in place).
    """
    from research.eventstudy.inference import bh
    from research.stats import finite_or_none

    idx = [i for i, v in enumerate(verdicts) if finite_or_none(v.pvalue) is not None]
    if idx:
        q, _ = bh([float(verdicts[i].pvalue) for i in idx])
        for i, qi in zip(idx, q):
            verdicts[i].q_value = float(qi)
    return verdicts


def verdicts_frame(verdicts: list) -> pl.DataFrame:
    """Verdicts as a table (:data:`VERDICT_COLUMNS`), q-values filled in."""
    with_qvalues(verdicts)
    rows = [{k: getattr(v, k) for k in VERDICT_COLUMNS} for v in verdicts]
    return pl.DataFrame(rows, schema=VERDICT_COLUMNS)


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
    created: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return clean_json(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> ResultsRecord:
        d = dict(d)
        names = set(Verdict.__dataclass_fields__)
        d["verdicts"] = [Verdict(**{k: x for k, x in v.items() if k in names}) for v in d.get("verdicts", [])]
        return cls(**d)


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
        with atomic_path(path) as tmp:
            df.write_parquet(tmp)
        self.record.tables[name] = str(path.relative_to(self.out_dir))
        return path

    def figure(self, name: str, chart, formats=None) -> list[Path]:
        # the spec and SVG by default; PNG/PDF are rendered from them on demand (research.plots.render)
        from research.plots import export, record_formats  # plotting is optional for records

        files = export(chart, self.out_dir / "figures" / name, formats=formats or record_formats(), cached_svg=True)
        self.record.figures[name] = [str(Path(f).relative_to(self.out_dir)) for f in files]
        return files

    def verdict(self, v: Verdict) -> None:
        self.record.verdicts.append(v)

    def note(self, text: str) -> None:
        self.record.notes.append(text)

    def save(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return write_json(self.out_dir / RECORD_FILE, self.record.to_dict())


def load(out_dir) -> ResultsRecord:
    """Read ``record.json`` from a run directory."""
    path = Path(out_dir) / RECORD_FILE
    if not path.exists():
        raise ResearchError(f"{path} does not exist: the run did not finish (see its executed notebook)")
    return ResultsRecord.from_dict(json.loads(path.read_text()))


# --------------------------------------------------------------------------------------------------
# a results object -> its record
# --------------------------------------------------------------------------------------------------
#: the note every record of the simulated market carries
SYNTHETIC_NOTE = "SYNTHETIC DATA: simulated market (research.simulate), not real prices"


def run_parameters(notebook: str, namespace: dict) -> dict:
    """The run's parameters: the names of ``notebook``'s ``parameters`` cell, valued from ``namespace``.

    Names come from the notebook itself (:func:`research.batch.parameter_spec`, papermill's parser), values from the
    kernel's globals, so papermill's injected values (and ``params.json`` of a batch run, which
    holds the same values) are what the record stores; no hand-kept list of names.
    ``notebook`` is a stem in ``notebooks/`` or a path.
    """
    from research import paths
    from research.batch import parameter_spec

    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = paths.NOTEBOOKS_DIR / f"{notebook}.ipynb"
    names = list(parameter_spec(path))
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ResearchError(f"{path.name}: parameters {missing} of its parameters cell are not defined in the kernel")
    return {n: namespace[n] for n in names}


def write_result(result, output_dir, *, inputs=None, parameters: dict | None = None, notebook: str | None = None,
                 title: str | None = None, claim: str | None = None) -> Path:
    """Write the record of a :class:`research.results.Results` object into ``output_dir``.

    Tables come from ``result.tables()``, figures from ``result.figures()``, verdicts from
    ``result.verdicts()``, notes from ``result.notes``; coverage and the synthetic label from
    ``inputs`` (:class:`research.panel.Inputs`). The notebook stem, title and claim default to the
    registry entry of ``result.key``. ``output_dir`` None means ``reports/runs/manual/<notebook>``.
    Tables and figures are written first, ``record.json`` last (atomically).
    """
    from research.hypotheses.registry import get

    entry = get(result.key) if getattr(result, "key", None) else None
    w = _writer(result, output_dir, entry, inputs=inputs, parameters=parameters, notebook=notebook, title=title,
                claim=claim)
    for name, df in result.tables().items():
        if df is not None:
            w.table(name, df)
    for v in with_qvalues(list(result.verdicts())):
        w.verdict(v)
    for name, chart in result.built_figures().items():
        w.figure(name, chart)
    return w.save()


def _writer(result, output_dir, entry, *, inputs, parameters, notebook, title, claim) -> RecordWriter:
    """A :class:`RecordWriter` with the record's header, coverage and notes filled in."""
    from research import paths

    stem = notebook or (entry.notebook if entry else None)
    if not stem:
        raise ResearchError(f"write_result: say which notebook {type(result).__name__} belongs to (notebook=...)")
    # a relative output_dir means the project's folder, whether the kernel runs at the project root
    # (papermill) or in notebooks/ (JupyterLab)
    out = paths.resolve_in_project(output_dir) if output_dir else paths.reports_dir() / "runs" / "manual" / stem
    synthetic = bool(inputs.synthetic if inputs is not None else getattr(result, "synthetic", False))
    w = RecordWriter(out, notebook=stem, title=title or (entry.title if entry else stem),
                     claim=claim if claim is not None else (entry.claim if entry else ""),
                     parameters=parameters, synthetic=synthetic)
    if inputs is not None:
        # the span the analysis used (first/last usable bar of each required input), not the panel's
        rc = getattr(inputs, "record_coverage", None)
        w.record.coverage = rc(stem) if callable(rc) else dict(inputs.coverage)
    if synthetic and (entry is None or entry.kind == "hypothesis"):
        w.note(SYNTHETIC_NOTE)
    for n in getattr(result, "notes", None) or []:
        w.note(n)
    return w
