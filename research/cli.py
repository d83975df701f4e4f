"""The ``research`` command line: a thin typer layer that parses and calls the library."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Treadmill: test claims about Bitcoin's perpetual-futures liquidation treadmill with data.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: $RESEARCH_DATA_DIR or ./data).")


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
    days: int = typer.Option(180, help="Length of the simulated market in days."),
) -> None:
    """Write the simulated treadmill market (source 'synthetic') into the lake."""
    from research import paths, simulate

    market = simulate.write_sample(data_dir, seed=seed, days=days)
    n = market.truth.height
    typer.echo(f"wrote the SYNTHETIC market (seed {seed}, {days} days, {n} planted episodes) "
               f"into {paths.lake_dir(data_dir)}")


@app.command()
def info(data_dir: Optional[Path] = DataDir) -> None:
    """Show what the lake holds: per table, source and symbol the span, rows, interval and gaps."""
    from rich.console import Console
    from rich.table import Table

    from research import coverage, paths

    cov = coverage.coverage(data_dir)
    console = Console(width=None if Console().is_terminal else 160)
    if cov.is_empty():
        console.print(f"The lake at {paths.lake_dir(data_dir)} is empty. "
                      "Run `research sample` for the simulated market or `research fetch binance` for real data.")
        return
    t = Table(title=f"Lake: {paths.lake_dir(data_dir)}")
    cols = ["table", "source", "venue", "symbol", "interval", "rows", "start", "end", "missing", "gaps"]
    for c in cols:
        t.add_column(c, justify="right" if c in ("rows", "missing", "gaps") else "left")
    for row in cov.iter_rows(named=True):
        t.add_row(*["" if row[c] is None else str(row[c])[:16] for c in cols])
    console.print(t)
    for row in cov.filter(cov["gaps"].fill_null(0) > 0).iter_rows(named=True):
        console.print(f"gaps in {row['table']} {row['source']}/{row['venue']}/{row['symbol']} {row['interval']}: "
                      f"{row['largest_gaps']}" + (" ..." if row["gaps"] > coverage.MAX_GAPS_LISTED else ""))


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
    from research.errors import QueryError

    try:
        df = db.query(name, data_dir, **_parse_params(param))
    except QueryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
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
