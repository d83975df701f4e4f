"""Lake commands: sample, info, query, schema, import, verify, repair."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DataDir, _bad_input, _parse_params, app


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
