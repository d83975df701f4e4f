"""The ``research`` command line: a thin typer layer that parses and calls the library."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Treadmill: test claims about Bitcoin's perpetual-futures liquidation treadmill with data.",
    no_args_is_help=True,
    add_completion=False,
    # plain click help: rich markup would eat every bracketed default ("[fundingRate,klines]",
    # "[https://...]") and show boolean flags as "<bool>"
    rich_markup_mode=None,
)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: $RESEARCH_DATA_DIR, else data/ in the project checkout, else ./data).")


def main() -> None:  # pragma: no cover - console entry point
    app()


def _parse_params(pairs: list[str] | None) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-p")
        k, v = pair.split("=", 1)
        params[k.strip()] = None if v.strip().lower() in ("null", "none") else v
    return params


@app.command()
def sample(
    data_dir: Optional[Path] = DataDir,
    seed: int = typer.Option(7, help="Random seed; the same seed gives the same market."),
    days: Optional[int] = typer.Option(None, help="Length in days, ending 2026-03-31 (default: 547 days from 2024-10-01)."),
) -> None:
    """Write the simulated treadmill market (source 'synthetic') into the lake."""
    from research import paths, simulate

    market = simulate.write_sample(data_dir, seed=seed, days=days)
    n = market.truth.height
    typer.echo(f"wrote the SYNTHETIC market (seed {seed}, {market.params['start']} + {market.params['days']} days, "
               f"{n} planted episodes) "
               f"into {paths.lake_dir(data_dir)}")


@app.command()
def info(data_dir: Optional[Path] = DataDir) -> None:
    """Show what the lake holds: per table, source and symbol the span, rows, interval and gaps."""
    from rich.console import Console
    from rich.table import Table

    from research import coverage, paths
    from research.errors import LakeError

    console = Console(width=None if Console().is_terminal else 160)
    for line in coverage.unlisted(data_dir):
        console.print(f"not in its table log (never read; `research repair` removes it): {line}")
    try:
        cov = coverage.coverage(data_dir)
    except LakeError as exc:  # a damaged table: name the file, no traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    if cov.is_empty():
        console.print(f"The lake at {paths.lake_dir(data_dir)} is empty. "
                      "Run `research sample` for the simulated market or `research fetch binance` for real data.")
        return
    t = Table(title=f"Lake: {paths.lake_dir(data_dir)}")
    cols = ["table", "source", "venue", "symbol", "interval", "rows", "start", "end", "missing", "gaps"]
    for c in cols:
        t.add_column(c, justify="right" if c in ("rows", "missing", "gaps") else "left")
    for row in cov.iter_rows(named=True):
        t.add_row(*[_cell(row[c]) for c in cols])
    console.print(t)
    for row in cov.filter(cov["gaps"].fill_null(0) > 0).iter_rows(named=True):
        console.print(f"gaps in {row['table']} {row['source']}/{row['venue']}/{row['symbol']} {row['interval']}: "
                      f"{row['largest_gaps']}" + (" ..." if row["gaps"] > coverage.MAX_GAPS_LISTED else ""))


def _cell(v) -> str:
    """One `info` cell: whole names, timestamps to the minute (a fixed cut used to show "liquidation_orde")."""
    import datetime as dt

    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def _empty_hint(data_dir, params: dict) -> str:
    """Why a query answered nothing: what the lake holds for the asked symbol, and the asked span."""
    from research import coverage

    cov = coverage.coverage(data_dir)
    sym = params.get("symbol")
    span = f"{params.get('start') or '...'} .. {params.get('end') or '...'}"
    if cov.is_empty():
        return "the lake is empty: run `research sample` or `research fetch binance`"
    held = cov.filter(cov["symbol"] == sym) if sym else cov
    if held.is_empty():
        have = ", ".join(sorted({s for s in cov["symbol"].drop_nulls().to_list()})) or "none"
        return f"the lake holds no data for symbol {sym!r} (symbols: {have})"
    lo, hi = held["start"].min(), held["end"].max()
    return f"asked {span}; the lake holds {sym or 'data'} from {_cell(lo)} to {_cell(hi)}"


@app.command("query")
def query_cmd(
    name: str = typer.Argument(..., help="Named query (queries/NAME.sql)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="KEY=VALUE query parameter (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the result to a .csv or .parquet file."),
    data_dir: Optional[Path] = DataDir,
    rows: int = typer.Option(20, help="Rows to print when --out is not given."),
) -> None:
    """Run a named query with bound parameters and print or save the result."""
    import polars as pl

    from research import db
    from research.errors import LakeError, QueryError

    if out is not None and out.suffix not in (".csv", ".parquet"):
        typer.echo(f"--out {out}: unsupported format {out.suffix or '(none)'!r}; use a .csv or .parquet file name", err=True)
        raise typer.Exit(2)
    params = _parse_params(param)
    try:
        df = db.query(name, data_dir, **params)
    except QueryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except LakeError as exc:  # a damaged table: refuse to answer, name the file
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    if df.height == 0:
        typer.echo(f"0 rows: {_empty_hint(data_dir, params)}", err=True)
    if out:
        db.save_frame(df, out)
        typer.echo(f"{df.height} rows x {df.width} columns -> {out}")
    else:
        with pl.Config(tbl_rows=rows, tbl_cols=12):
            typer.echo(df)


@app.command()
def schema() -> None:
    """Print the canonical data model (tables, columns, types, units)."""
    from research.schema import describe

    typer.echo(describe())


# --------------------------------------------------------------------------- fetch / import (sources)
fetch_app = typer.Typer(help="Download, verify and ingest data from a source into the lake.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(fetch_app, name="fetch")


def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _finish(summary) -> None:
    typer.echo(summary.summary())
    raise typer.Exit(summary.exit_code)


def _source_call(fn, *args, **kwargs):
    from research.errors import ResearchError

    try:
        return fn(*args, **kwargs)
    except ResearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)


@fetch_app.command("binance")
def fetch_binance(
    start: str = typer.Option(..., "--start", help="First day, YYYY-MM-DD (or a month, YYYY-MM)."),
    end: Optional[str] = typer.Option(None, "--end", help="Last day, inclusive (default: yesterday UTC; a month means its last day)."),
    symbol: Optional[list[str]] = typer.Option(None, "--symbol", "-s", help="Symbol(s), repeatable or comma-separated [BTCUSDT]."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d", help="fundingRate, klines, premiumIndexKlines, markPriceKlines, indexPriceKlines, metrics, aggTrades, liquidationSnapshot [fundingRate,klines]."),
    market: str = typer.Option("um", help="um (USD-M futures) or spot."),
    interval: str = typer.Option("1h", help="Kline interval for the *klines datasets."),
    granularity: str = typer.Option("auto", help="auto (monthly files for whole months), daily or monthly."),
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="RESEARCH_BINANCE_BASE_URL", help="Archive base URL [https://data.binance.vision/]."),
    workers: int = typer.Option(4, help="Parallel downloads."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the URLs."),
    refresh: bool = typer.Option(False, "--refresh", help="Re-download files already verified (the archive sometimes replaces files)."),
    retries: int = typer.Option(4, help="Retries per file on 5xx/429/dropped connections."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Binance public archive: download, verify each zip against its .CHECKSUM, ingest into the lake.

    Exit code 0 = all verified and ingested, 1 = something failed or was corrupt (see the summary),
    2 = some files are not in the archive (missing). Re-running skips what is already verified.
    """
    from research.sources import binance

    s = binance.parse_date(start, "--start")
    e = binance.month_end(binance.parse_date(end, "--end")) if end and len(end) == 7 else (
        binance.parse_date(end, "--end") if end else None)
    summary = _source_call(binance.fetch, _split_list(symbol) or ["BTCUSDT"], _split_list(dataset) or ["fundingRate", "klines"],
                           start=s, end=e, market=market, interval=interval, granularity=granularity, data_dir=data_dir,
                           base=base_url, workers=workers, dry_run=dry_run, refresh=refresh, retries=retries,
                           progress=not quiet)
    if dry_run:
        for u in summary.urls:
            typer.echo(u)
        for n in summary.notes:
            typer.echo(f"note: {n}")
        typer.echo(f"{len(summary.urls)} file(s); nothing downloaded (--dry-run)")
        raise typer.Exit(0)
    _finish(summary)


@fetch_app.command("feargreed")
def fetch_feargreed(
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="RESEARCH_FEARGREED_BASE_URL", help="API base [https://api.alternative.me]."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Crypto Fear & Greed index (alternative.me, whole history) -> table sentiment."""
    from research.sources import feargreed

    _finish(_source_call(feargreed.fetch, data_dir=data_dir, base=base_url))


@fetch_app.command("etf")
def fetch_etf(
    url: Optional[str] = typer.Option(None, "--url", envvar="RESEARCH_ETF_URL", help="Farside-style flow table (HTML or CSV)."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Spot Bitcoin ETF daily net flows from a Farside-style table -> table etf_flows."""
    from research.sources import etf

    _finish(_source_call(etf.fetch, url=url, data_dir=data_dir))


@fetch_app.command("coinalyze")
def fetch_coinalyze(
    start: str = typer.Option(..., "--start", help="First day, YYYY-MM-DD."),
    end: str = typer.Option(..., "--end", help="Last day, inclusive."),
    symbol: Optional[list[str]] = typer.Option(None, "--symbol", "-s", help="Coinalyze symbols [BTCUSDT_PERP.A = Binance USD-M BTCUSDT]."),
    kind: Optional[list[str]] = typer.Option(None, "--kind", "-k", help="liquidations, open_interest, funding, long_short [liquidations,open_interest]."),
    interval: str = typer.Option("daily", help="1min 5min 15min 30min 1hour 2hour 4hour 6hour 12hour daily (intraday keeps ~1500-2000 points)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="RESEARCH_COINALYZE_BASE_URL", help="API base [https://api.coinalyze.net/v1]."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Coinalyze history (needs COINALYZE_API_KEY in the environment): liquidations after 2024-03-31, OI, funding, L/S."""
    from research.sources import binance, coinalyze

    _finish(_source_call(coinalyze.fetch, _split_list(symbol) or ["BTCUSDT_PERP.A"],
                         _split_list(kind) or ["liquidations", "open_interest"],
                         start=binance.parse_date(start, "--start"), end=binance.parse_date(end, "--end"),
                         interval=interval, data_dir=data_dir, base=base_url))


def _kv(pairs: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise typer.BadParameter(f"{p!r} is not KEY=VALUE", param_hint=what)
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _const(v: str):
    try:
        return int(v)
    except ValueError:
        return v


@app.command("import")
def import_cmd(
    table: Optional[str] = typer.Argument(None, help="Canonical table (bars, funding, open_interest, liquidations, positioning, etf_flows, sentiment, ...)."),
    file: Optional[Path] = typer.Argument(None, help="CSV (or .csv.gz) or Parquet export."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", "-m", help="YAML mapping file."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named mapping (see research.sources.importer.PRESETS), e.g. coinglass_liquidations_4h, coinalyze_liquidations_1d, binance_spot_1d."),
    pack: Optional[str] = typer.Option(None, "--pack", help="Import a whole real pack in one command: standard (Oct 2025 - Apr 2026) or long (2018/2020 - 2026 daily, 8h, 4h, 1h; BTC, ETH, SOL). No TABLE/FILE."),
    real_dir: Optional[Path] = typer.Option(None, "--real-dir", help="The real pack directory for --pack [$TREADMILL_SHARED/data/real or ../shared/data/real]."),
    time_col: Optional[str] = typer.Option(None, "--time-col", help="Time column (flags mode)."),
    time_format: Optional[str] = typer.Option(None, "--time-format", help="strptime format, iso, epoch, epoch_s, epoch_ms, ..."),
    tz: Optional[str] = typer.Option(None, "--tz", help="Time zone of naive times (UTC, Europe/London, +03:00)."),
    label: str = typer.Option("start", "--label", help="The time marks the bucket start, end, or an instant."),
    bucket: Optional[str] = typer.Option(None, "--bucket", help="Bucket interval of the export if not the 'interval' constant."),
    dayfirst: Optional[bool] = typer.Option(None, "--dayfirst/--monthfirst", help="How to read 01/02/2025 (refused unless given)."),
    value: Optional[list[str]] = typer.Option(None, "--value", "-v", help="TARGET=COLUMN[:UNIT], e.g. rate=close:percent (repeatable)."),
    const: Optional[list[str]] = typer.Option(None, "--const", "-c", help="KEY=VALUE constant, e.g. venue=binance (repeatable)."),
    drop_last: int = typer.Option(0, "--drop-last", help="Drop the last N rows (an open bar)."),
    skip_value: Optional[list[str]] = typer.Option(None, "--skip-value", help="Skip rows whose time cell is this (footer rows; repeatable)."),
    fmt: str = typer.Option("auto", "--format", help="auto, csv, parquet or farside."),
    start: Optional[str] = typer.Option(None, "--start", help="Keep rows from this date."),
    end: Optional[str] = typer.Option(None, "--end", help="Keep rows up to this date (inclusive)."),
    max_file_mb: Optional[float] = typer.Option(None, "--max-file-mb", help="Cap on the file size [512]."),
    max_line_kb: Optional[float] = typer.Option(None, "--max-line-kb", help="Cap on a CSV line's length [1024]."),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Cap on data rows [20000000]."),
    max_funding_8h: Optional[float] = typer.Option(None, "--max-funding-8h", help="Plausible |funding| per 8 h, decimal [0.005], scaled per interval."),
    min_date: Optional[str] = typer.Option(None, "--min-date", help="Earliest plausible date [2009-01-03]."),
    max_date: Optional[str] = typer.Option(None, "--max-date", help="Latest plausible date [tomorrow]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and validate only; write nothing."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Import a dashboard export (CoinGlass, Coinalyze, Farside, ...) with a mapping, or a whole pack; all or nothing.

    Exit code 0 = imported, 2 = bad input (a one-line error naming file, column and line; nothing stored).
    """
    import os

    from research import paths
    from research.errors import ResearchError
    from research.parsing import parse_date
    from research.sources import importer

    try:
        s = parse_date(start, "--start") if start else None
        e = parse_date(end, "--end") if end else None
        if pack:
            if table or file or mapping or preset:
                raise typer.BadParameter("--pack imports a whole pack: give no TABLE, FILE, --mapping or --preset")
            shared = Path(os.environ.get("TREADMILL_SHARED") or paths.PROJECT_ROOT.parent / "shared")
            results = importer.import_pack(pack, real_dir or shared / "data" / "real", data_dir, start=s, end=e,
                                           dry_run=dry_run)
            for name, res in results.items():
                typer.echo(f"{name}: {res.rows_in} rows valid" + (" (dry run)" if dry_run else f"; {res}"))
            return
        if not table or not file:
            raise typer.BadParameter("give TABLE and FILE (or --pack standard|long)")
        flags_given = bool(time_col or value or const)
        if sum(bool(x) for x in (mapping, preset, flags_given)) != 1:
            raise typer.BadParameter("give exactly one of --mapping FILE, --preset NAME, or flags (--time-col, --value, --const)")
        if mapping:
            m = mapping
        elif preset:
            m = preset
        else:
            m = {"table": table, "time": {"column": time_col, "format": time_format, "timezone": tz, "label": label,
                                          "bucket": bucket, "dayfirst": dayfirst},
                 "values": dict(_kv(value, "--value")), "constants": {k: _const(v) for k, v in _kv(const, "--const").items()},
                 "drop_last_rows": drop_last, "skip_values": skip_value or [], "format": fmt}
        caps = {k: v for k, v in (("max_file_bytes", max_file_mb and int(max_file_mb * 2**20)),
                                  ("max_line_bytes", max_line_kb and int(max_line_kb * 2**10)),
                                  ("max_rows", max_rows)) if v}
        bounds = {"funding_max_8h": max_funding_8h, "min_date": min_date, "max_date": max_date}
        limits = importer.Limits(**caps)
        res = importer.import_file(table, file, m, data_dir, start=s, end=e, dry_run=dry_run, limits=limits,
                                   bounds={k: v for k, v in bounds.items() if v is not None} or None)
    except ResearchError as exc:
        _bad_input(exc)
    except OSError as exc:  # e.g. an unreadable data directory
        _bad_input(f"{exc.filename or ''}: {exc.strerror or exc}")
    typer.echo(f"{file.name}: {res.rows_in} rows valid" + (" (dry run, nothing written)" if dry_run else f"; {res}"))


# --------------------------------------------------------------------------- run / grid / report (batch)
Params = typer.Option(None, "-p", "--param", help="KEY=VALUE notebook parameter, typed like its default (repeatable).")
Quiet = typer.Option(False, "--quiet", "-q", help="No progress bar.")
Executor = typer.Option("process", "--executor", help="process (local worker processes) or dask.")
Scheduler = typer.Option(None, "--scheduler", help="dask.distributed scheduler address, e.g. tcp://10.0.0.5:8786 (with --executor dask).")


def _bad_input(exc) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command("run")
def run_cmd(
    notebook: Path = typer.Argument(..., help="Notebook to run (.ipynb with a cell tagged 'parameters')."),
    param: Optional[list[str]] = Params,
    data_dir: Optional[Path] = DataDir,
    out: Optional[Path] = typer.Option(None, "--out", help="Output root; the run goes to OUT/<notebook>/<hash12>/ (default: reports/runs)."),
    kernel: str = typer.Option("python3", "--kernel", help="Jupyter kernel."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds a cell may run (default: no limit)."),
    quiet: bool = Quiet,
) -> None:
    """Run one notebook with checked parameters; writes executed.ipynb, params.json and its results record.

    Exit code 0 = ran, 1 = a cell failed (the partial notebook is kept), 2 = bad notebook or parameters.
    """
    from research import batch
    from research.errors import NotebookError

    try:
        spec = batch.make_spec(notebook, batch.parse_assignments(param), data_dir=data_dir, out_root=out,
                               kernel_name=kernel, from_strings=True, timeout=timeout)
    except NotebookError as exc:
        _bad_input(exc)
    result = batch.execute(spec, progress_bar=not quiet)
    if result.status == "failed":
        typer.echo(f"error: {batch.describe_failure(result)}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {result.run_dir} ({result.seconds:.1f} s)")


@app.command("grid")
def grid_cmd(
    grid_file: Path = typer.Argument(..., help="Grid YAML: notebooks x parameter sets (format: see research.batch)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Parallel worker processes (default: the file's workers, else 2)."),
    executor: str = Executor,
    scheduler: Optional[str] = Scheduler,
    resume: bool = typer.Option(False, "--resume", help="Run only what failed or is missing."),
    data_dir: Optional[Path] = DataDir,
    out: Optional[Path] = typer.Option(None, "--out", help="Output root (default: the file's out, else reports/runs)."),
    max_runs: int = typer.Option(1000, "--max-runs", help="Refuse a grid that expands to more runs than this."),
    quiet: bool = Quiet,
) -> None:
    """Run a grid of notebooks x parameters in parallel; a failed run does not stop the others.

    Exit code 0 = every run finished, 1 = some failed (see the summary), 2 = bad grid file or parameters.
    """
    from rich.console import Console

    from research import batch
    from research.errors import NotebookError

    try:
        grid = batch.load_grid(grid_file, data_dir=data_dir, out_root=out, max_runs=max_runs)
        result = batch.run_grid(grid.specs, workers=workers or grid.workers or 2, executor=executor,
                                scheduler=scheduler, resume=resume, progress=not quiet)
    except NotebookError as exc:
        _bad_input(exc)
    console = Console(width=None if Console().is_terminal else 160)
    console.print(result.summary())
    for r in result.failed:
        console.print(batch.describe_failure(r), markup=False, highlight=False)
    if result.failed:
        console.print(f"{len(result.failed)} run(s) failed; fix them and rerun with --resume to run only those.")
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    name: Optional[str] = typer.Option(None, "--name", help="Report directory under reports/ (default: latest)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (instead of reports/NAME)."),
    data_dir: Optional[Path] = DataDir,
    notebooks: Optional[list[str]] = typer.Option(None, "--notebooks", "-n", help="Subset: numbers, stems or paths (repeatable or comma-separated)."),
    notebooks_dir: Optional[Path] = typer.Option(None, "--notebooks-dir", help="Where the numbered notebooks are (default: notebooks/)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="KEY=VALUE override for every selected notebook that defines KEY (repeatable)."),
    workers: int = typer.Option(2, "--workers", "-w", help="Parallel worker processes."),
    executor: str = Executor,
    scheduler: Optional[str] = Scheduler,
    resume: bool = typer.Option(False, "--resume", help="Reuse finished runs of an earlier report in the same directory."),
    quiet: bool = Quiet,
    figures: str = typer.Option("svg", "--figures", help="Figure formats in the report, comma-separated: svg, png, pdf (PNG/PDF are rendered from the recorded spec)."),
) -> None:
    """Run the standard notebooks (on the simulated market when the lake is empty) and build index.html.

    Exit code 0 = every notebook gave results, 1 = the report was written but some notebooks failed,
    2 = bad options or parameters.
    """
    from research import batch, report
    from research.errors import NotebookError

    try:
        rep = report.build_report(name=name, out=out, data_dir=data_dir, notebooks=notebooks, notebooks_dir=notebooks_dir,
                                  parameters=batch.parse_assignments(param), workers=workers, executor=executor,
                                  scheduler=scheduler, resume=resume, progress=not quiet,
                                  figure_formats=tuple(f.strip() for f in figures.split(",") if f.strip()))
    except NotebookError as exc:
        _bad_input(exc)
    for e in rep.failed:
        typer.echo(f"failed: {e.stem}: {e.problem}" + (f" (see {e.run.executed})" if e.run.executed else ""), err=True)
    typer.echo(rep.summary())
    if rep.failed:
        raise typer.Exit(1)


@app.command("lab")
def lab_cmd(
    data_dir: Optional[Path] = DataDir,
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: JupyterLab picks 8888 or the next free one)."),
    open_browser: bool = typer.Option(False, "--open/--no-open", help="Open a browser tab."),
) -> None:
    """Start JupyterLab on the project: its notebooks, this lake, offline; outputs stay out of tracked files.

    Kernels get RESEARCH_DATA_DIR, so a notebook reads the same lake as the CLI. Saving a notebook
    under notebooks/ strips its outputs (the tracked file stays clean) and keeps the full copy
    under reports/lab/.
    """
    from research import lab

    raise typer.Exit(lab.launch(data_dir=data_dir, port=port, open_browser=open_browser))


# --------------------------------------------------------------------------- verify / repair (the lake)
@app.command("verify")
def verify_cmd(
    data_dir: Optional[Path] = DataDir,
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Also check raw/ against manifest.jsonl."),
) -> None:
    """Check every lake file against its table log and every raw file against the manifest.

    Names each bad file. Exit code 0 = all good, 1 = problems found (run `research repair`).
    """
    from research.lake.verify import verify

    report = verify(data_dir, raw=raw)
    typer.echo(report.summary(), err=not report.ok)
    raise typer.Exit(0 if report.ok else 1)


@app.command("repair")
def repair_cmd(data_dir: Optional[Path] = DataDir) -> None:
    """Rebuild damaged lake files from raw/, remove files no table log lists, then verify again.

    Exit code 0 = the lake verifies clean, 1 = something could not be repaired (named).
    """
    from research.lake.repair import repair

    report = repair(data_dir)
    typer.echo(report.summary(), err=not report.ok)
    raise typer.Exit(0 if report.ok else 1)


# --------------------------------------------------------------------------- fetch <provider> from declarations
def _provider_command(name: str, prov) -> None:
    """One ``research fetch <name>`` command whose options and help come from the provider declaration."""

    def command(
        start: str = typer.Option(..., "--start", help="First day, YYYY-MM-DD (or a month, YYYY-MM)."),
        end: str = typer.Option(..., "--end", help="Last day, inclusive (YYYY-MM-DD)."),
        dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d", help=f"Datasets: {', '.join(prov.datasets)} "
                                                    f"(default: {','.join(prov.default_datasets or prov.datasets)})."),
        symbol: Optional[list[str]] = typer.Option(None, "--symbol", "-s", help=f"{prov.symbol_help} (default: {','.join(prov.default_symbols)})."),
        interval: Optional[str] = typer.Option(None, "--interval", help="Canonical interval (5m, 1h, 4h, 1d ...); each dataset's default otherwise."),
        param: Optional[list[str]] = typer.Option(None, "-p", "--param", help=f"KEY=VALUE provider parameter ({', '.join(prov.params) or 'none'})."),
        base_url: Optional[str] = typer.Option(None, "--base-url", envvar=prov.base_url_env, help=f"API base (default: {prov.default_base_url})."),
        retries: int = typer.Option(4, "--retries", help="Extra attempts per request on 429/5xx/drops/malformed pages."),
        data_dir: Optional[Path] = DataDir,
    ) -> None:
        from research.parsing import parse_assignments, parse_date
        from research.sources import base

        def run():
            return base.fetch(name, _split_list(dataset) or None, _split_list(symbol) or None,
                              start=parse_date(start, "--start"), end=parse_date(end, "--end"), interval=interval,
                              data_dir=data_dir, base=base_url, extra=parse_assignments(param, "-p"), retries=retries)

        _finish(_source_call(run))

    fetch_app.command(name, help=prov.help_text())(command)


def _register_provider_commands() -> None:
    from research.sources.base import providers

    for name, prov in providers().items():
        _provider_command(name, prov)


_register_provider_commands()
