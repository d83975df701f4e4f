"""``research fetch <source>``: Binance's archive, Fear & Greed, ETF flows, Coinalyze, and every declared provider."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DataDir, app

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
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds one attempt at one file may take, connect to last byte (a stalled or trickling server is cut off, then retried) [600]."),
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
                           progress=not quiet, deadline=timeout)
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
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds one attempt at one file may take, connect to last byte (a stalled or trickling server is cut off, then retried) [600]."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Crypto Fear & Greed index (alternative.me, whole history) -> table sentiment."""
    from research.sources import feargreed

    _finish(_source_call(feargreed.fetch, data_dir=data_dir, base=base_url, deadline=timeout))


@fetch_app.command("etf")
def fetch_etf(
    url: Optional[str] = typer.Option(None, "--url", envvar="RESEARCH_ETF_URL", help="Farside-style flow table (HTML or CSV)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds one attempt at one file may take, connect to last byte (a stalled or trickling server is cut off, then retried) [600]."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Spot Bitcoin ETF daily net flows from a Farside-style table -> table etf_flows."""
    from research.sources import etf

    _finish(_source_call(etf.fetch, url=url, data_dir=data_dir, deadline=timeout))


@fetch_app.command("coinalyze")
def fetch_coinalyze(
    start: str = typer.Option(..., "--start", help="First day, YYYY-MM-DD."),
    end: str = typer.Option(..., "--end", help="Last day, inclusive."),
    symbol: Optional[list[str]] = typer.Option(None, "--symbol", "-s", help="Coinalyze symbols [BTCUSDT_PERP.A = Binance USD-M BTCUSDT]."),
    kind: Optional[list[str]] = typer.Option(None, "--kind", "-k", help="liquidations, open_interest, funding, long_short [liquidations,open_interest]."),
    interval: str = typer.Option("daily", help="1min 5min 15min 30min 1hour 2hour 4hour 6hour 12hour daily (intraday keeps ~1500-2000 points)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", envvar="RESEARCH_COINALYZE_BASE_URL", help="API base [https://api.coinalyze.net/v1]."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds one attempt at one file may take, connect to last byte (a stalled or trickling server is cut off, then retried) [600]."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Coinalyze history (needs COINALYZE_API_KEY in the environment): liquidations after 2024-03-31, OI, funding, L/S."""
    from research.sources import binance, coinalyze

    _finish(_source_call(coinalyze.fetch, _split_list(symbol) or ["BTCUSDT_PERP.A"],
                         _split_list(kind) or ["liquidations", "open_interest"],
                         start=binance.parse_date(start, "--start"), end=binance.parse_date(end, "--end"),
                         interval=interval, data_dir=data_dir, base=base_url, deadline=timeout))


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
