"""Which venues flushed: venue shares of liquidations and open interest around each selloff.

The articles ask where a flush happened ("Bybit and Hyperliquid together accounted for more than
half" of a US$2B liquidation day). :func:`venue_shares` answers it on any lake that holds two or
more venues (the simulated market has Binance, Bybit, OKX and Hyperliquid):

* **selloffs** come from :func:`research.events.detect_selloffs` on the hourly panel (or are passed
  in); each has a peak and a trough;
* **liquidations**: per venue, long and short USD liquidated in buckets that start in
  ``[peak_ts, trough_ts + post_hours]``, and each venue's share of the long liquidations of all
  venues there;
* **open interest**: per venue, the last observation at or before the peak and at or before
  ``trough_ts + post_hours`` (each at most ``max_oi_age_hours`` old), the venue's share of OI
  before the selloff and its share of the OI that left (null when OI did not fall in total; a
  venue whose OI grew while the total fell has a negative share).

This is a description of what happened, measured after the fact (peaks and troughs use the whole
episode), not a signal. Cross-venue aggregates (venue ``all``) are left out so nothing is counted
twice; when a venue has several sources or intervals, the one with the most rows in the span is
used (ties: the finer interval), and the choice is reported in ``inputs``. OI without a USD
value (e.g. Bybit's coin-denominated history) is valued with the nearest earlier perp close of
the same coin. Symbols are compared by coin (``BTCUSDT``, ``BTC-USDT-SWAP``, ``BTC-PERPETUAL`` and
``BTC`` are all ``BTC``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

from research.errors import ResearchError
from research.schema import INTERVALS

_COIN = r"^([A-Z0-9]+?)(?:[-_/]?(?:USDT|USDC|USD|PERPETUAL|PERP|SWAP)\b.*|USDT|USDC|USD)?$"


class VenueShareError(ResearchError, ValueError):
    """The venue-share analysis cannot run on this input (names what is missing)."""


def coin_expr(col: str = "symbol") -> pl.Expr:
    """``BTCUSDT``/``BTC-USDT-SWAP``/``BTC-PERPETUAL``/``BTC`` -> ``BTC``."""
    return pl.col(col).str.to_uppercase().str.extract(_COIN, 1)


@dataclass
class VenueShares:
    """Venue shares of liquidations and OI around each selloff.

    Attributes
    ----------
    selloffs : polars.DataFrame
        One row per selloff (``event_id, peak_ts, trough_ts, window_end, drawdown_pct``).
    liquidations : polars.DataFrame
        Per selloff and venue: ``long_usd, short_usd, long_share`` (share of all venues' longs).
    open_interest : polars.DataFrame
        Per selloff and venue: ``oi_before, oi_after, oi_change_usd, share_before, share_of_drop``.
    venues : list of str
    inputs : polars.DataFrame
        Source and interval used per table and venue.
    params : dict
    """

    selloffs: pl.DataFrame
    liquidations: pl.DataFrame
    open_interest: pl.DataFrame
    venues: list[str]
    inputs: pl.DataFrame
    params: dict = field(default_factory=dict)

    def top_venues(self, k: int = 2) -> pl.DataFrame:
        """Per selloff: the ``k`` venues with the most long liquidations and their combined share."""
        return (self.liquidations.sort(["event_id", "long_share"], descending=[False, True])
                .group_by("event_id", maintain_order=True)
                .agg(pl.col("venue").head(k).str.join("+").alias("top_venues"),
                     pl.col("long_share").head(k).sum().alias("top_share")))

    def to_frame(self) -> pl.DataFrame:
        """One row per selloff and venue with both measures."""
        return self.liquidations.join(self.open_interest, on=["event_id", "venue"], how="full", coalesce=True)

    def to_dict(self) -> dict:
        return {"params": self.params, "venues": self.venues, "selloffs": self.selloffs.to_dicts(),
                "rows": self.to_frame().to_dicts(), "inputs": self.inputs.to_dicts()}

    def summary(self) -> str:
        lines = [f"Venue shares around {self.selloffs.height} selloff(s); venues: {', '.join(self.venues)}"]
        top = self.top_venues(2).join(self.selloffs, on="event_id")
        for r in top.sort("event_id").iter_rows(named=True):
            share = "n/a" if r["top_share"] is None else f"{100 * r['top_share']:.0f}%"
            lines.append(f"  #{r['event_id']} peak {r['peak_ts']:%Y-%m-%d %H}h dd {r['drawdown_pct']:.1f}%: "
                         f"{r['top_venues']} = {share} of long liquidations")
        return "\n".join(lines)

    def plot(self, measure: str = "liquidations"):
        """Stacked venue shares per selloff: ``liquidations`` (long), ``oi_before`` or ``oi_drop``."""
        import altair as alt

        from research import plots

        cols = {"liquidations": (self.liquidations, "long_share", "share of long liquidations"),
                "oi_before": (self.open_interest, "share_before", "share of OI before the selloff"),
                "oi_drop": (self.open_interest, "share_of_drop", "share of the OI that left")}
        if measure not in cols:
            raise VenueShareError(f"measure {measure!r}: use one of {', '.join(cols)}")
        df, col, title = cols[measure]
        df = df.join(self.selloffs.select("event_id", "peak_ts"), on="event_id").with_columns(
            pl.col("peak_ts").dt.strftime("%Y-%m-%d").alias("selloff"))
        return (alt.Chart(plots.data(df.select("selloff", "venue", col)))
                .mark_bar()
                .encode(x=alt.X("selloff:N", title="selloff (peak date)"),
                        y=alt.Y(f"{col}:Q", title=title, stack="zero", axis=alt.Axis(format="%")),
                        color=alt.Color("venue:N"), tooltip=["selloff:N", "venue:N", alt.Tooltip(f"{col}:Q", format=".1%")])
                .properties(title=f"Which venues flushed: {title}", width=520, height=260))


def _pick(df: pl.DataFrame, what: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One (source, interval) per venue: most rows, then the finest interval."""
    if df.is_empty():
        return df, pl.DataFrame(schema={"table": pl.String, "venue": pl.String, "source": pl.String, "interval": pl.String})
    counts = (df.group_by("venue", "source", "interval").len()
              .with_columns(pl.col("interval").replace_strict(INTERVALS, default=10**9).alias("_s"))
              .sort(["venue", "len", "_s", "source"], descending=[False, True, False, False])
              .group_by("venue", maintain_order=True).first())
    chosen = df.join(counts.select("venue", "source", "interval"), on=["venue", "source", "interval"])
    return chosen, counts.select(pl.lit(what).alias("table"), "venue", "source", "interval")


def _read(con, sql: str, params: list) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())


def venue_shares(data_dir=None, *, coin: str = "BTC", start=None, end=None, selloffs: pl.DataFrame | None = None,
                 price_symbol: str = "BTCUSDT", price_venue: str = "binance", drawdown_pct: float = 6.0,
                 within_hours: int = 48, min_spacing_hours: float = 72, post_hours: int = 6,
                 max_oi_age_hours: float = 24.0) -> VenueShares:
    """Venue shares of liquidations and open interest around each selloff.

    Parameters
    ----------
    data_dir : path, optional
        Lake to read (default ``$RESEARCH_DATA_DIR``).
    coin : str
        Coin whose venues are compared (symbols are matched by coin).
    start, end : str or date, optional
        Span of the panel used to find selloffs.
    selloffs : polars.DataFrame, optional
        Selloffs with ``peak_ts``, ``trough_ts`` (and ``drawdown_pct``); detected otherwise on the
        ``price_venue``/``price_symbol`` hourly panel with ``drawdown_pct``, ``within_hours``,
        ``min_spacing_hours`` (see :func:`research.events.detect_selloffs`).
    post_hours : int
        Hours after the trough still counted (a liquidation wave outlasts the low close).
    max_oi_age_hours : float
        An OI observation older than this at the peak or at the window end is not used.

    Raises
    ------
    VenueShareError
        Fewer than two venues with liquidations or OI for ``coin``, or no selloffs.
    """
    from research import db, events

    con = db.connect(data_dir)
    try:
        if selloffs is None:
            kw = {"symbol": price_symbol, "venue": price_venue}
            if start:
                kw["start"] = str(start)
            if end:
                kw["end"] = str(end)
            panel = db.query("hourly_panel", con=con, **kw)
            selloffs = events.detect_selloffs(panel, drawdown_pct=drawdown_pct, within_hours=within_hours,
                                              min_spacing_hours=min_spacing_hours)
        missing = [c for c in ("peak_ts", "trough_ts") if c not in selloffs.columns]
        if missing:
            raise VenueShareError(f"selloffs lack column(s) {missing}")
        if selloffs.is_empty():
            raise VenueShareError("no selloffs in the span: lower drawdown_pct or widen start/end")
        sel = selloffs.with_row_index("event_id", offset=1) if "event_id" not in selloffs.columns else selloffs
        sel = sel.select(pl.col("event_id").cast(pl.Int64), "peak_ts", "trough_ts",
                         (pl.col("trough_ts") + timedelta(hours=post_hours)).alias("window_end"),
                         *(["drawdown_pct"] if "drawdown_pct" in sel.columns else []))
        lo = sel["peak_ts"].min() - timedelta(hours=max_oi_age_hours)
        hi = sel["window_end"].max()
        liq = _read(con, "SELECT ts, venue, symbol, interval, long_usd, short_usd, source FROM liquidations "
                         "WHERE venue <> 'all' AND ts >= ? AND ts <= ?", [lo, hi])
        oi = _read(con, "SELECT ts, venue, symbol, interval, oi_base, oi_usd, source FROM open_interest "
                        "WHERE venue <> 'all' AND ts >= ? AND ts <= ?", [lo, hi])
        px = _read(con, "SELECT ts + INTERVAL 1 HOUR AS ts, symbol, close FROM bars WHERE market = 'perp' "
                        "AND interval = '1h' AND ts >= ? AND ts <= ?", [lo - timedelta(hours=1), hi])
    finally:
        con.close()
    coin = coin.upper()
    liq, liq_in = _pick(liq.filter(coin_expr() == coin), "liquidations")
    oi, oi_in = _pick(oi.filter(coin_expr() == coin), "open_interest")
    venues = sorted(set(liq["venue"]) | set(oi["venue"]))
    if len(venues) < 2:
        raise VenueShareError(f"the lake holds {len(venues)} venue(s) with liquidations or OI for {coin} "
                              f"({', '.join(venues) or 'none'}); the venue-share analysis needs two or more")
    liq_tab = _liq_shares(sel, liq)
    oi_tab = _oi_shares(sel, _value_oi(oi, px.filter(coin_expr() == coin)), max_oi_age_hours)
    params = {"coin": coin, "start": None if start is None else str(start), "end": None if end is None else str(end),
              "drawdown_pct": drawdown_pct, "within_hours": within_hours, "min_spacing_hours": min_spacing_hours,
              "post_hours": post_hours, "max_oi_age_hours": max_oi_age_hours}
    return VenueShares(sel, liq_tab, oi_tab, venues, pl.concat([liq_in, oi_in]), params)


def _liq_shares(sel: pl.DataFrame, liq: pl.DataFrame) -> pl.DataFrame:
    schema = {"event_id": pl.Int64, "venue": pl.String, "long_usd": pl.Float64, "short_usd": pl.Float64,
              "long_share": pl.Float64}
    if liq.is_empty():
        return pl.DataFrame(schema=schema)
    w = (sel.select("event_id", "peak_ts", "window_end").join(liq, how="cross")
         .filter((pl.col("ts") >= pl.col("peak_ts")) & (pl.col("ts") <= pl.col("window_end"))))
    out = w.group_by("event_id", "venue").agg(pl.col("long_usd").sum(), pl.col("short_usd").sum())
    total = pl.col("long_usd").sum().over("event_id")
    out = out.with_columns(pl.when(total > 0).then(pl.col("long_usd") / total).alias("long_share"))
    return out.select(list(schema)).cast(schema).sort("event_id", "venue")


def _value_oi(oi: pl.DataFrame, px: pl.DataFrame) -> pl.DataFrame:
    """Fill a null ``oi_usd`` with ``oi_base`` x the latest perp close (any venue) of the coin."""
    if oi.is_empty() or oi["oi_usd"].null_count() == 0 or px.is_empty():
        return oi
    close = px.group_by("ts").agg(pl.col("close").median()).sort("ts")
    filled = (oi.sort("ts").join_asof(close, on="ts", strategy="backward", tolerance=timedelta(hours=2))
              .with_columns(pl.coalesce("oi_usd", pl.col("oi_base") * pl.col("close")).alias("oi_usd")))
    return filled.drop("close")


def _oi_shares(sel: pl.DataFrame, oi: pl.DataFrame, max_age_h: float) -> pl.DataFrame:
    schema = {"event_id": pl.Int64, "venue": pl.String, "oi_before": pl.Float64, "oi_after": pl.Float64,
              "oi_change_usd": pl.Float64, "share_before": pl.Float64, "share_of_drop": pl.Float64}
    oi = oi.filter(pl.col("oi_usd").is_not_null())
    if oi.is_empty():
        return pl.DataFrame(schema=schema)
    grid = sel.select("event_id", "peak_ts", "window_end").join(oi.select("venue").unique(), how="cross")
    series = oi.select("venue", pl.col("ts").alias("obs_ts"), "oi_usd").sort("obs_ts")
    tol = timedelta(hours=max_age_h)

    def at(col: str, name: str) -> pl.DataFrame:
        g = grid.sort(col)
        return g.join_asof(series, left_on=col, right_on="obs_ts", by="venue", strategy="backward",
                           tolerance=tol, check_sortedness=False).select("event_id", "venue", pl.col("oi_usd").alias(name))

    out = at("peak_ts", "oi_before").join(at("window_end", "oi_after"), on=["event_id", "venue"])
    drop = pl.col("oi_before") - pl.col("oi_after")
    total_drop = drop.sum().over("event_id")
    out = out.with_columns((pl.col("oi_after") - pl.col("oi_before")).alias("oi_change_usd"),
                           (pl.col("oi_before") / pl.col("oi_before").sum().over("event_id")).alias("share_before"),
                           pl.when(total_drop > 0).then(drop / total_drop).alias("share_of_drop"))
    return out.select(list(schema)).cast(schema).sort("event_id", "venue")
