"""Hand-written DuckDB queries that return the same frames as the panels: the lower bound of ``bench_query.py``.

Each is what an analyst who already knows the lake would write for one instrument and span: the
series are known (the binance/synthetic perp and spot 1h bars, funding, 5-minute OI and positioning
and 1h liquidations of the asked symbol; for the daily one also the synthetic ETF flows and the
Fear & Greed index), so there is no choice among venues or coin-level series, no table log is read
and no file list is built from one: the files are globbed from the lake's layout, for the years
``[start - 1 day - bar, end + bar)`` (the years the panel reads for these spans). Each series is read from
its files with one ``read_parquet`` and a time filter (the as-of ones from a day before the first
bar), joined with one plain or ASOF join per series, and the bucketed panels aggregate with one
``GROUP BY``; there is no generic machinery (no series tables, no ``unnest`` of bound lists, no
per-series ids, no cross join of the spine with the series).

They compute every column of the panel arms, with the panel's documented rules (``queries/panel.sql``
header): a bar with a missing sub-bar has no prices; an as-of value older than ``stale_after`` = 2 of
its series' intervals is null (5 minutes for OI and positioning, from their partitions; funding: its
observed median spacing, at least ``interval_hours``); liquidation buckets land in the row that
contains their end, and only inside the span the series covers; ETF flows as-of strictly before the
day, null after 4 days. Columns that only restate what the analyst chose (``symbol``, ``interval``,
``price_market``, ``oi_interval_hours``, ``liq_interval_hours``, ``synthetic``, ``inputs``) are
literals, bound as constants, as a hand-writer would type them.
"""
from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import duckdb
import polars as pl

from research import db, paths

S = "source=synthetic/venue=binance"

# the staleness flags of every as-of series and the values they mask, from the joined rows `j`
# (the same rules in the hourly and the bucketed panels)
_MASKED_CTES = """k AS (
    SELECT j.*,
           date_diff('second', f_ts, known_at) <= 2 * (SELECT secs FROM fund_secs) AS f_ok,
           known_at - o_ts <= INTERVAL 10 MINUTE AS o_ok,
           known_at - x_ts <= INTERVAL 10 MINUTE AS x_ok,
           j.ts >= (SELECT lo FROM cover) AND known_at <= (SELECT hi FROM cover) AS l_ok
    FROM j
),
v AS (
    SELECT k.*,
           CASE WHEN f_ok THEN rate END AS fr, CASE WHEN f_ok THEN interval_hours END AS fih,
           CASE WHEN o_ok THEN oi_base END AS ob, CASE WHEN o_ok THEN oi_usd END AS ou, CASE WHEN o_ok THEN o_ts END AS ot,
           ln(perp_close / lag(perp_close) OVER (ORDER BY ts)) AS perp_ret
    FROM k
)
"""

# the columns the hourly and the 4h panel select from their last CTE (the bar length, bar hours and
# settlement count are what differ)
_PANEL_SELECT = """SELECT ts, $symbol AS symbol, open AS perp_open, high AS perp_high, low AS perp_low, perp_close, perp_ret,
       spot_close, ln(spot_close / lag(spot_close) OVER (ORDER BY ts)) AS spot_ret,
       perp_volume, spot_volume, perp_qv AS perp_quote_volume, spot_qv AS spot_quote_volume,
       perp_tbv AS perp_taker_buy_volume, spot_volume / nullif(spot_volume + perp_volume, 0) AS spot_share,
       (2 * perp_tbv - perp_volume) / nullif(perp_volume, 0) AS taker_imbalance,
       (2 * spot_tbv - spot_volume) / nullif(spot_volume, 0) AS spot_taker_imbalance,
       fr AS funding_rate, fr * 8.0 / fih AS funding_rate_8h, fih AS funding_interval_hours, settled AS funding_settled,
       ob AS oi_base, ou AS oi_usd,
       100 * (coalesce(ob, ou) / lag(coalesce(ob, ou)) OVER (ORDER BY ts) - 1) AS oi_change_pct,
       date_diff('second', ot, known_at) / 3600.0 AS oi_age_hours,
       CASE WHEN l_ok THEN long_usd END AS liq_long_usd, CASE WHEN l_ok THEN short_usd END AS liq_short_usd,
       CASE WHEN l_ok THEN liq_n END AS liq_count,
       CASE WHEN x_ok THEN top_trader_ls_ratio END AS top_trader_ls_ratio,
       CASE WHEN x_ok THEN account_ls_ratio END AS account_ls_ratio,
       CASE WHEN x_ok THEN taker_buy_sell_ratio END AS taker_buy_sell_ratio,
       perp_close IS NOT NULL AS has_perp, spot_close IS NOT NULL AS has_spot, fr IS NOT NULL AS has_funding,
       ot IS NOT NULL AS has_oi, coalesce(l_ok, FALSE) AS has_liq, coalesce(x_ok, FALSE) AS has_positioning,
       {interval} AS interval, 'perp' AS price_market, perp_close AS close, perp_ret AS ret,
       {bar_hours} AS bar_hours, {settlements} AS funding_settlements,
       $oi_hours AS oi_interval_hours, $liq_hours AS liq_interval_hours, TRUE AS synthetic, $inputs AS inputs
FROM v
QUALIFY ts >= (SELECT lo FROM span)
ORDER BY ts
"""

# --- the hourly panel: the 1h bars are the rows -------------------------------------------------
HOURLY_SQL = """
WITH
pe AS (SELECT ts, open, high, low, close, volume, quote_volume, taker_buy_volume
       FROM read_parquet($perp) WHERE ts >= $b0 AND ts < $t1),
sp AS (SELECT ts, close, volume, quote_volume, taker_buy_volume FROM read_parquet($spot) WHERE ts >= $b0 AND ts < $t1),
span AS (SELECT min(ts) FILTER (WHERE ts >= $t0) AS lo, max(ts) AS hi FROM (SELECT ts FROM pe UNION ALL SELECT ts FROM sp)),
grid AS (SELECT unnest(generate_series(lo - INTERVAL 1 HOUR, hi, INTERVAL 1 HOUR)) AS ts FROM span),
fund AS (SELECT ts, rate, interval_hours FROM read_parquet($funding) WHERE ts >= $a0 AND ts < $t1 + INTERVAL 1 HOUR),
fund_secs AS (SELECT greatest(coalesce(median(d), 0), max(interval_hours) * 3600) AS secs
              FROM (SELECT epoch(ts) - lag(epoch(ts)) OVER (ORDER BY ts) AS d, interval_hours FROM fund)),
oi AS (SELECT ts, oi_base, oi_usd FROM read_parquet($oi) WHERE ts >= $a0 AND ts < $t1 + INTERVAL 1 HOUR),
pos AS (SELECT ts, top_trader_ls_ratio, account_ls_ratio, taker_buy_sell_ratio
        FROM read_parquet($pos) WHERE ts >= $a0 AND ts < $t1 + INTERVAL 1 HOUR),
liq AS (SELECT ts, long_usd, short_usd, count FROM read_parquet($liq) WHERE ts < $t1),
cover AS (SELECT min(ts) AS lo, max(ts) + INTERVAL 1 HOUR AS hi FROM liq),
j AS (
    SELECT g.ts, g.ts + INTERVAL 1 HOUR AS known_at, pe.open, pe.high, pe.low, pe.close AS perp_close,
           pe.volume AS perp_volume, pe.quote_volume AS perp_qv, pe.taker_buy_volume AS perp_tbv,
           sp.close AS spot_close, sp.volume AS spot_volume, sp.quote_volume AS spot_qv, sp.taker_buy_volume AS spot_tbv,
           pe.ts IS NOT NULL OR sp.ts IS NOT NULL AS has_bar,
           f.ts AS f_ts, f.rate, f.interval_hours, fs.rate AS settled, o.ts AS o_ts, o.oi_base, o.oi_usd,
           l.long_usd, l.short_usd, l.count AS liq_n, x.ts AS x_ts, x.top_trader_ls_ratio, x.account_ls_ratio,
           x.taker_buy_sell_ratio
    FROM grid g
    LEFT JOIN pe ON pe.ts = g.ts
    LEFT JOIN sp ON sp.ts = g.ts
    ASOF LEFT JOIN fund f ON g.ts + INTERVAL 1 HOUR >= f.ts
    LEFT JOIN fund fs ON date_trunc('hour', fs.ts) = g.ts
    ASOF LEFT JOIN oi o ON g.ts + INTERVAL 1 HOUR >= o.ts
    LEFT JOIN liq l ON l.ts = g.ts
    ASOF LEFT JOIN pos x ON g.ts + INTERVAL 1 HOUR >= x.ts
),
""" + _MASKED_CTES + _PANEL_SELECT.format(interval="'1h'", bar_hours="CASE WHEN has_bar THEN 1.0::DOUBLE END",
                                   settlements="CAST(settled IS NOT NULL AS BIGINT)")

# --- bars of $w seconds (4h, 1d) aggregated from the 1h bars: one GROUP BY per market --------------
BUCKETED_CTES = """
pe AS (SELECT time_bucket(to_seconds($w), ts) AS ts, count(*) * 3600 = $w AS complete,
              arg_min(open, ts) AS open, max(high) AS high, min(low) AS low, arg_max(close, ts) AS close,
              sum(volume) AS volume, sum(quote_volume) AS quote_volume, sum(taker_buy_volume) AS taker_buy_volume
       FROM read_parquet($perp) WHERE ts >= $b0 AND ts < $t1 GROUP BY 1),
sp AS (SELECT time_bucket(to_seconds($w), ts) AS ts, count(*) * 3600 = $w AS complete, arg_max(close, ts) AS close,
              sum(volume) AS volume, sum(quote_volume) AS quote_volume, sum(taker_buy_volume) AS taker_buy_volume
       FROM read_parquet($spot) WHERE ts >= $b0 AND ts < $t1 GROUP BY 1),
span AS (SELECT min(ts) FILTER (WHERE ts >= $t0) AS lo, max(ts) AS hi FROM (SELECT ts FROM pe UNION ALL SELECT ts FROM sp)),
grid AS (SELECT unnest(generate_series(lo - to_seconds($w), hi, to_seconds($w))) AS ts FROM span),
fund AS (SELECT ts, rate, interval_hours FROM read_parquet($funding) WHERE ts >= $a0 AND ts < $t1 + to_seconds($w)),
fund_secs AS (SELECT greatest(coalesce(median(d), 0), max(interval_hours) * 3600) AS secs
              FROM (SELECT epoch(ts) - lag(epoch(ts)) OVER (ORDER BY ts) AS d, interval_hours FROM fund)),
settled AS (SELECT time_bucket(to_seconds($w), ts) AS ts, sum(rate) AS rate, count(*) AS n FROM fund GROUP BY 1),
oi AS (SELECT ts, oi_base, oi_usd FROM read_parquet($oi) WHERE ts >= $a0 AND ts < $t1 + to_seconds($w)),
pos AS (SELECT ts, top_trader_ls_ratio, account_ls_ratio, taker_buy_sell_ratio
        FROM read_parquet($pos) WHERE ts >= $a0 AND ts < $t1 + to_seconds($w)),
liq_rows AS (SELECT ts, long_usd, short_usd, count FROM read_parquet($liq) WHERE ts < $t1),
cover AS (SELECT min(ts) AS lo, max(ts) + INTERVAL 1 HOUR AS hi FROM liq_rows),
liq AS (SELECT time_bucket(to_seconds($w), ts) AS ts, sum(long_usd) AS long_usd, sum(short_usd) AS short_usd,
               CAST(sum(count) AS BIGINT) AS n
        FROM liq_rows WHERE ts >= $b0 GROUP BY 1),
j AS (
    SELECT g.ts, g.ts + to_seconds($w) AS known_at, pe.open, pe.high, pe.low, pe.close AS perp_close,
           pe.volume AS perp_volume, pe.quote_volume AS perp_qv, pe.taker_buy_volume AS perp_tbv,
           sp.close AS spot_close, sp.volume AS spot_volume, sp.quote_volume AS spot_qv, sp.taker_buy_volume AS spot_tbv,
           pe.ts IS NOT NULL OR sp.ts IS NOT NULL AS has_bar,
           f.ts AS f_ts, f.rate, f.interval_hours, st.rate AS settled, coalesce(st.n, 0) AS settlements,
           o.ts AS o_ts, o.oi_base, o.oi_usd, l.long_usd, l.short_usd, l.n AS liq_n,
           x.ts AS x_ts, x.top_trader_ls_ratio, x.account_ls_ratio, x.taker_buy_sell_ratio
    FROM grid g
    LEFT JOIN pe ON pe.ts = g.ts AND pe.complete
    LEFT JOIN sp ON sp.ts = g.ts AND sp.complete
    ASOF LEFT JOIN fund f ON g.ts + to_seconds($w) >= f.ts
    LEFT JOIN settled st ON st.ts = g.ts
    ASOF LEFT JOIN oi o ON g.ts + to_seconds($w) >= o.ts
    LEFT JOIN liq l ON l.ts = g.ts
    ASOF LEFT JOIN pos x ON g.ts + to_seconds($w) >= x.ts
),
""" + _MASKED_CTES

PANEL_4H_SQL = "WITH" + BUCKETED_CTES + """
""" + _PANEL_SELECT.format(interval="$interval", bar_hours="CASE WHEN has_bar THEN $w / 3600.0 END",
                                   settlements="settlements")

# the daily panel: 1d bars, plus the ETF flow dated strictly before the day and the day's sentiment
DAILY_SQL = "WITH" + BUCKETED_CTES + """,
d AS (
    SELECT CAST(ts AS DATE) AS date, $symbol AS symbol, open AS perp_open, high AS perp_high, low AS perp_low, perp_close, perp_ret,
           spot_close, ln(spot_close / lag(spot_close) OVER (ORDER BY ts)) AS spot_ret, perp_volume, spot_volume,
           spot_volume / nullif(spot_volume + perp_volume, 0) AS spot_share,
           (2 * perp_tbv - perp_volume) / nullif(perp_volume, 0) AS taker_imbalance,
           settled AS funding_settled_sum, settlements AS funding_settlements,
           fr AS funding_rate, fr * 8.0 / fih AS funding_rate_8h, ob AS oi_base, ou AS oi_usd,
           CASE WHEN l_ok THEN long_usd END AS liq_long_usd, CASE WHEN l_ok THEN short_usd END AS liq_short_usd,
           CASE WHEN x_ok THEN top_trader_ls_ratio END AS top_trader_ls_ratio,
           CASE WHEN x_ok THEN account_ls_ratio END AS account_ls_ratio,
           CASE WHEN has_bar THEN 24.0::DOUBLE END AS hours,
           perp_close IS NOT NULL AS has_perp, spot_close IS NOT NULL AS has_spot, fr IS NOT NULL AS has_funding,
           ot IS NOT NULL AS has_oi, coalesce(l_ok, FALSE) AS has_liq, coalesce(x_ok, FALSE) AS has_positioning,
           100 * (coalesce(ob, ou) / lag(coalesce(ob, ou)) OVER (ORDER BY ts) - 1) AS oi_change_pct
    FROM v
    QUALIFY ts >= (SELECT lo FROM span)
),
etf AS (SELECT date AS flow_date, flow_usd FROM read_parquet($etf) WHERE product = 'TOTAL'),
fg AS (SELECT date, value, label FROM read_parquet($sentiment) WHERE date >= CAST($t0 AS DATE))
SELECT d.* EXCLUDE (oi_change_pct), d.oi_change_pct,
       CASE WHEN d.date - e.flow_date <= 4 THEN e.flow_usd END AS etf_flow_usd, e.flow_date AS etf_flow_date,
       fg.value AS fear_greed, fg.label AS fear_greed_label,
       'perp' AS price_market, d.perp_close AS close, d.perp_ret AS ret, TRUE AS synthetic, $inputs AS inputs
FROM d
ASOF LEFT JOIN etf e ON d.date > e.flow_date
LEFT JOIN fg ON fg.date = d.date
ORDER BY d.date
"""

#: arm -> (SQL, bar seconds)
ARMS = {"lower_1h": (HOURLY_SQL, 3600), "lower_4h": (PANEL_4H_SQL, 14400), "lower_1d": (DAILY_SQL, 86400)}


def files(d: Path, table: str, parts: str, years) -> list[str]:
    """The partition files of ``table`` under ``parts`` for ``years``, globbed from the lake's layout."""
    out = []
    for y in years:
        out += [str(p) for p in (paths.lake_dir(d) / table).glob(f"{parts}/year={y}/*.parquet")]
    return sorted(out)


def series_files(d: Path, symbol: str, years) -> dict[str, list[str]]:
    """The files of the series the analyst reads (binance/synthetic, the asked symbol)."""
    return {
        "perp": files(d, "bars", f"{S}/market=perp/symbol={symbol}/interval=1h", years),
        "spot": files(d, "bars", f"{S}/market=spot/symbol={symbol}/interval=1h", years),
        "funding": files(d, "funding", f"{S}/symbol={symbol}", years),
        "oi": files(d, "open_interest", f"{S}/symbol={symbol}/interval=5m", years),
        "pos": files(d, "positioning", f"{S}/symbol={symbol}/interval=5m", years),
        "liq": files(d, "liquidations", f"{S}/symbol={symbol}/interval=1h", years),
    }


def inputs_text(symbol: str) -> str:
    """What the analyst read, in the panels' ``inputs`` wording (a literal: the series are known)."""
    return (f"price=perp; perp=synthetic/1h; spot=synthetic/1h; funding=synthetic/binance/{symbol}; "
            f"oi=synthetic/binance/{symbol}/5m; liquidations=synthetic/binance/{symbol}/1h; "
            f"positioning=synthetic/binance/{symbol}/5m")


_DB: dict = {}


def _cursor() -> duckdb.DuckDBPyConnection:
    # the query layer's policy: one in-memory database per process, a new connection per query
    if "db" not in _DB:
        _DB["db"] = duckdb.connect(":memory:")
    return _DB["db"].cursor()


def _statement(con, sql: str):
    # parsed once per process, as the query layer keeps its parse of a panel's SQL
    if sql not in _DB:
        _DB[sql] = con.extract_statements(sql)[0]
    return _DB[sql]


def run_sql(sql: str, params: dict) -> pl.DataFrame:
    """Run ``sql`` on a new connection with the query layer's settings: ``execute()`` and one Arrow fetch."""
    con = _cursor()
    try:
        db._configure(con)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            return pl.from_arrow(con.execute(_statement(con, sql), params).to_arrow_table())
    finally:
        con.close()


def lower(arm: str, d: Path, symbol: str, t0: dt.datetime, t1: dt.datetime) -> pl.DataFrame:
    """The hand-written panel ``arm`` (:data:`ARMS`) of ``symbol`` over ``[t0, t1)``."""
    sql, w = ARMS[arm]
    b0 = t0 - dt.timedelta(seconds=w)  # the bar before the first row, so the first return is defined
    a0 = b0 - dt.timedelta(days=1)  # as-of series: a day before that bar's close is plenty at 2 intervals
    # as-of series are read up to a bar past t1 (the last row is known at t1): that bar's year too
    years = range(a0.year, (t1 + dt.timedelta(seconds=w) - dt.timedelta(microseconds=1)).year + 1)
    p = dict(series_files(d, symbol, years), t0=t0, t1=t1, b0=b0, a0=a0, symbol=symbol, inputs=inputs_text(symbol))
    if arm == "lower_1d":
        p |= {"etf": files(d, "etf_flows", "source=synthetic", years),
              "sentiment": files(d, "sentiment", "source=synthetic/index=fear_greed", years)}
    else:
        p |= {"oi_hours": 300 / 3600.0, "liq_hours": 1.0}
    if arm != "lower_1h":
        p["w"] = w
    if arm == "lower_4h":
        p["interval"] = "4h"
    return run_sql(sql, p)
