-- One row per bar of a chosen frequency (1h, 4h, 8h, 1d, ...) for one instrument: perp and spot prices
-- and returns, a chosen price series, volumes and spot share, taker imbalance, funding, open interest,
-- liquidations and positioning, aligned without look-ahead.
-- Row ts is the bar's open (UTC, bars aligned to 00:00 UTC); the row is known at its close, ts + interval.
-- Bars: per market the series covering most of the span at this interval or at a finer one that divides
-- it (native bars win ties); finer bars are aggregated into the row's bar, and a bar missing any of its
-- sub-bars has null prices (an incomplete bar's close is not the close of the bar).
-- Price: `price` picks perp, spot or index; null falls back to perp, else spot, else index. The choice is
-- in the columns price_market, close, ret and in `inputs`.
-- Slower series are taken as known at the row's close: OI and positioning as-of their observation
-- instant, funding as the last settlement at or before the close, liquidation buckets in the row that
-- contains the bucket's end. An as-of value older than `stale_after` of its own series' intervals is
-- null (funding: its observed spacing, at least its interval_hours), so a series that stops is missing,
-- not frozen. One series per input is chosen (exact symbol before the coin-level aggregate, e.g. BTC;
-- the bars' venue first; then the most rows in the span); `oi_venue`/`liq_venue` take a venue, a comma
-- list (one series per venue, summed; a row needs every venue) or `all` (the cross-venue aggregate
-- series, venue 'all', when the lake has one, else the sum of every venue; never both).
-- scan: panel
-- param symbol: instrument, e.g. BTCUSDT
-- param interval: panel frequency, e.g. 1h, 4h, 8h, 1d [default: 1h]
-- param start: first bar, UTC, inclusive [default: 1970-01-01]
-- param end: end, UTC, exclusive [default: 2100-01-01]
-- param venue: venue of the bars, funding and positioning [default: binance]
-- param price: price series for close/ret: perp, spot or index; null = perp, else spot, else index [default: null]
-- param oi_venue: open-interest venue(s): a venue, a comma list, or all; null picks the best series [default: null]
-- param liq_venue: liquidation venue(s): a venue, a comma list, or all; null picks the best series [default: null]
-- param source: use only this source for every input (e.g. synthetic); null picks the best available [default: null]
-- param stale_after: an as-of value expires after this many of its own series' intervals [default: 2]
WITH
-- The series are chosen before this SQL runs (research.panel_series.choose applies the rule above
-- to the lake's file lists) and bound as lists: $bar_markets/$bar_sources/$bar_intervals, one per market,
-- $oi_sources/$oi_venues/... one per OI series, and so on; the views read only their files. Each
-- series' interval in seconds comes with it ($bar_secs, $oi_secs, $liq_secs, $pos_secs), so the
-- optimizer sees constants (an as-of series is read from $b0 less its own `stale_after` intervals).
-- bars: the chosen series per market, aggregated to the panel's bars ---------------------------------
bar_series AS (
    SELECT unnest(CAST($bar_markets AS VARCHAR[])) AS market, unnest(CAST($bar_sources AS VARCHAR[])) AS source,
           unnest(CAST($bar_intervals AS VARCHAR[])) AS interval, unnest(CAST($bar_secs AS INTEGER[])) AS secs, 1 AS rk
),
chosen AS (SELECT CAST($price_market AS VARCHAR) AS price_market),
bkt AS (
    SELECT b.market, time_bucket(to_seconds($fsecs), b.ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS ts,
           count(*) * any_value(s.secs) = $fsecs AS complete,
           count(*) * any_value(s.secs) / 3600.0 AS hours,
           arg_min(b.open, b.ts) AS open, max(b.high) AS high, min(b.low) AS low, arg_max(b.close, b.ts) AS close,
           sum(b.volume) AS volume, sum(b.quote_volume) AS quote_volume, sum(b.taker_buy_volume) AS taker_buy_volume
    FROM bars b
    JOIN bar_series s ON s.rk = 1 AND s.market = b.market AND s.source = b.source AND s.interval = b.interval
    WHERE b.symbol = $symbol AND b.venue = $venue AND b.ts >= $b0 AND b.ts < CAST($end AS TIMESTAMPTZ)
    GROUP BY b.market, 2
),
perp AS (SELECT * FROM bkt WHERE market = 'perp' AND complete),
spot AS (SELECT * FROM bkt WHERE market = 'spot' AND complete),
idx AS (SELECT * FROM bkt WHERE market = 'index' AND complete),
span AS (
    SELECT min(ts) FILTER (WHERE ts >= CAST($start AS TIMESTAMPTZ)) AS lo, max(ts) AS hi
    FROM bkt WHERE market IN ('perp', 'spot') OR market = (SELECT price_market FROM chosen)
),
spine AS (
    SELECT unnest(generate_series(lo, hi, to_seconds($fsecs))) AS ts
    FROM span WHERE lo IS NOT NULL AND lo <= hi
),
grid AS (
    SELECT ts, ts + to_seconds($fsecs) AS known_at FROM spine
    UNION ALL
    -- the bar before the first row, so the first return is defined
    SELECT min(ts) - to_seconds($fsecs), min(ts) FROM spine HAVING count(*) > 0
),
-- funding: one series; its staleness comes from its observed spacing -----------------------------
fund_series AS (
    SELECT CAST($fund_source AS VARCHAR) AS source, CAST($fund_venue AS VARCHAR) AS venue,
           CAST($fund_symbol AS VARCHAR) AS symbol
    WHERE $fund_source IS NOT NULL
),
fund AS (
    SELECT x.* FROM funding x
    WHERE x.source = $fund_source AND x.venue = $fund_venue AND x.symbol = $fund_symbol AND x.ts >= $asof_lo AND x.ts < CAST($end AS TIMESTAMPTZ) + to_seconds($fsecs)
),
fund_step AS MATERIALIZED (
    SELECT greatest(coalesce(median(d), 0), max(ih) * 3600) AS secs
    FROM (SELECT epoch(ts) - lag(epoch(ts)) OVER (ORDER BY ts) AS d, interval_hours AS ih FROM fund)
),
settled AS (
    SELECT time_bucket(to_seconds($fsecs), date_trunc('hour', ts), TIMESTAMPTZ '1970-01-01 00:00:00+00') AS ts,
           sum(rate) AS rate, count(*) AS n
    FROM fund GROUP BY 1
),
-- open interest: one series, or one per venue summed ----------------------------------------------
oi_series AS (
    SELECT s.*, row_number() OVER (ORDER BY s.venue, s.source, s.symbol, s.interval) AS sid
    FROM (SELECT unnest(CAST($oi_sources AS VARCHAR[])) AS source, unnest(CAST($oi_venues AS VARCHAR[])) AS venue,
                 unnest(CAST($oi_symbols AS VARCHAR[])) AS symbol, unnest(CAST($oi_intervals AS VARCHAR[])) AS interval,
                 unnest(CAST($oi_secs AS INTEGER[])) AS secs) s
),
oi AS (
    SELECT o.sid, o.ts, o.oi_base, o.oi_usd
    -- the chosen series have one venue each, in venue order, so a row's venue gives its series' sid;
    -- filters on bound values, not a join, let the scan skip what the chosen files' statistics settle;
    -- a value older than `stale_after` of its series' intervals at the first row's close is never used
    FROM (SELECT *, list_position(CAST($oi_venues AS VARCHAR[]), venue) AS sid FROM open_interest
          WHERE ts >= $b0 - to_seconds(CAST($stale_after AS DOUBLE) * list_max(CAST($oi_secs AS INTEGER[])))
            AND ts < CAST($end AS TIMESTAMPTZ) + to_seconds($fsecs)) o
    WHERE o.source = CAST($oi_sources AS VARCHAR[])[o.sid] AND o.symbol = CAST($oi_symbols AS VARCHAR[])[o.sid]
      AND o.interval = CAST($oi_intervals AS VARCHAR[])[o.sid]
),
oi_at AS (
    SELECT g.ts, g.known_at, g.secs, o.ts AS oi_ts, o.oi_base, o.oi_usd,
           date_diff('second', o.ts, g.known_at) <= CAST($stale_after AS DOUBLE) * g.secs AS fresh
    FROM (SELECT g.*, s.sid, s.secs FROM grid g, oi_series s) g
    ASOF LEFT JOIN oi o ON o.sid = g.sid AND g.known_at >= o.ts
),
oi_row AS (
    -- one series (the usual case): its value when fresh; else the sum over the venues, all fresh
    SELECT ts, CASE WHEN fresh AND oi_base IS NOT NULL THEN oi_base END AS oi_base,
           CASE WHEN fresh AND oi_usd IS NOT NULL THEN oi_usd END AS oi_usd,
           CASE WHEN fresh THEN oi_ts END AS oi_ts, secs AS oi_secs
    FROM oi_at WHERE len(CAST($oi_venues AS VARCHAR[])) = 1
    UNION ALL
    SELECT ts,
           CASE WHEN count(*) FILTER (WHERE fresh AND oi_base IS NOT NULL) = count(*) THEN sum(oi_base) END AS oi_base,
           CASE WHEN count(*) FILTER (WHERE fresh AND oi_usd IS NOT NULL) = count(*) THEN sum(oi_usd) END AS oi_usd,
           CASE WHEN count(*) FILTER (WHERE fresh) = count(*) THEN min(oi_ts) END AS oi_ts,
           max(secs) AS oi_secs
    FROM oi_at WHERE len(CAST($oi_venues AS VARCHAR[])) <> 1 GROUP BY ts
),
-- liquidations: buckets land in the row that contains their end -----------------------------------
liq_series AS (
    SELECT unnest(CAST($liq_sources AS VARCHAR[])) AS source, unnest(CAST($liq_venues AS VARCHAR[])) AS venue,
           unnest(CAST($liq_symbols AS VARCHAR[])) AS symbol, unnest(CAST($liq_intervals AS VARCHAR[])) AS interval,
           unnest(CAST($liq_secs AS INTEGER[])) AS secs
),
liq_rows AS (
    SELECT l.*, s.secs FROM liquidations l JOIN liq_series s USING (source, venue, symbol, interval)
    WHERE l.ts < CAST($end AS TIMESTAMPTZ)
),
liq AS (
    SELECT time_bucket(to_seconds($fsecs), ts + to_seconds(secs) - INTERVAL 1 MICROSECOND,
                       TIMESTAMPTZ '1970-01-01 00:00:00+00') AS ts,
           sum(long_usd) AS long_usd, sum(short_usd) AS short_usd, CAST(sum(count) AS BIGINT) AS n
    FROM liq_rows WHERE ts >= $asof_lo GROUP BY 1
),
liq_cover AS MATERIALIZED (
    -- the span every chosen series covers (from the whole series: where it starts matters)
    SELECT max(lo) AS lo, min(hi) AS hi, max(secs) AS secs
    FROM (SELECT min(ts) AS lo, max(ts + to_seconds(secs)) AS hi, any_value(secs) AS secs
          FROM liq_rows GROUP BY source, venue, symbol, interval)
),
-- positioning: one series ----------------------------------------------------------------------
pos AS (
    SELECT x.*, CAST($pos_secs AS INTEGER) AS iv_secs FROM positioning x
    WHERE x.source = $pos_source AND x.venue = $pos_venue AND x.symbol = $pos_symbol AND x.interval = $pos_interval
      AND x.ts >= $b0 - to_seconds(CAST($stale_after AS DOUBLE) * CAST($pos_secs AS INTEGER))
      AND x.ts < CAST($end AS TIMESTAMPTZ) + to_seconds($fsecs)
),
joined AS (
    SELECT g.ts, g.known_at,
           pe.open AS perp_open, pe.high AS perp_high, pe.low AS perp_low, pe.close AS perp_close,
           pe.volume AS perp_volume, pe.quote_volume AS perp_quote_volume,
           pe.taker_buy_volume AS perp_taker_buy_volume,
           sp.close AS spot_close, sp.volume AS spot_volume, sp.quote_volume AS spot_quote_volume,
           sp.taker_buy_volume AS spot_taker_buy_volume, ix.close AS index_close,
           coalesce(pe.hours, sp.hours, ix.hours) AS bar_hours,
           x.rate AS funding_rate, x.interval_hours AS funding_interval_hours, x.ts AS funding_ts,
           st.rate AS funding_settled, coalesce(st.n, 0) AS funding_settlements,
           o.oi_base, o.oi_usd, o.oi_ts, o.oi_secs,
           lq.long_usd, lq.short_usd, lq.n AS liq_n,
           ps.top_trader_ls_ratio, ps.account_ls_ratio, ps.taker_buy_sell_ratio, ps.ts AS pos_ts, ps.iv_secs AS pos_secs
    FROM grid g
    LEFT JOIN perp pe ON pe.ts = g.ts
    LEFT JOIN spot sp ON sp.ts = g.ts
    LEFT JOIN idx ix ON ix.ts = g.ts
    ASOF LEFT JOIN fund x ON g.known_at >= x.ts
    LEFT JOIN settled st ON st.ts = g.ts
    LEFT JOIN oi_row o ON o.ts = g.ts
    LEFT JOIN liq lq ON lq.ts = g.ts
    ASOF LEFT JOIN pos ps ON g.known_at >= ps.ts
),
fresh AS (
    -- an as-of value is carried forward only while it is younger than `stale_after` of its own
    -- series' intervals, so a series that stops (end of coverage, outage) reads as missing
    SELECT * REPLACE (
        CASE WHEN fund_ok THEN funding_rate END AS funding_rate,
        CASE WHEN fund_ok THEN funding_interval_hours END AS funding_interval_hours,
        CASE WHEN fund_ok THEN funding_ts END AS funding_ts,
        CASE WHEN pos_ok THEN top_trader_ls_ratio END AS top_trader_ls_ratio,
        CASE WHEN pos_ok THEN account_ls_ratio END AS account_ls_ratio,
        CASE WHEN pos_ok THEN taker_buy_sell_ratio END AS taker_buy_sell_ratio,
        CASE WHEN pos_ok THEN pos_ts END AS pos_ts
    )
    FROM (
        SELECT j.*,
               date_diff('second', j.funding_ts, j.known_at) <= CAST($stale_after AS DOUBLE) * (SELECT secs FROM fund_step) AS fund_ok,
               date_diff('second', j.pos_ts, j.known_at) <= CAST($stale_after AS DOUBLE) * j.pos_secs AS pos_ok,
               j.ts >= (SELECT lo FROM liq_cover) AND j.known_at <= (SELECT hi FROM liq_cover) AS liq_ok
        FROM joined j
    )
),
panel AS (
    SELECT
        j.ts,
        CAST($symbol AS VARCHAR) AS symbol,
        j.perp_open, j.perp_high, j.perp_low, j.perp_close,
        ln(j.perp_close / lag(j.perp_close) OVER w) AS perp_ret,
        j.spot_close,
        ln(j.spot_close / lag(j.spot_close) OVER w) AS spot_ret,
        j.perp_volume, j.spot_volume, j.perp_quote_volume, j.spot_quote_volume, j.perp_taker_buy_volume,
        j.spot_volume / nullif(j.spot_volume + j.perp_volume, 0) AS spot_share,
        (2 * j.perp_taker_buy_volume - j.perp_volume) / nullif(j.perp_volume, 0) AS taker_imbalance,
        (2 * j.spot_taker_buy_volume - j.spot_volume) / nullif(j.spot_volume, 0) AS spot_taker_imbalance,
        j.funding_rate,
        j.funding_rate * 8.0 / j.funding_interval_hours AS funding_rate_8h,
        j.funding_interval_hours,
        j.funding_settled,
        j.oi_base, j.oi_usd,
        100 * (coalesce(j.oi_base, j.oi_usd) / lag(coalesce(j.oi_base, j.oi_usd)) OVER w - 1) AS oi_change_pct,
        date_diff('second', j.oi_ts, j.known_at) / 3600.0 AS oi_age_hours,
        CASE WHEN j.liq_ok THEN j.long_usd END AS liq_long_usd,
        CASE WHEN j.liq_ok THEN j.short_usd END AS liq_short_usd,
        CASE WHEN j.liq_ok THEN j.liq_n END AS liq_count,
        j.top_trader_ls_ratio, j.account_ls_ratio, j.taker_buy_sell_ratio,
        j.perp_close IS NOT NULL AS has_perp,
        j.spot_close IS NOT NULL AS has_spot,
        j.funding_rate IS NOT NULL AS has_funding,
        j.oi_ts IS NOT NULL AS has_oi,
        coalesce(j.liq_ok, FALSE) AS has_liq,
        j.pos_ts IS NOT NULL AS has_positioning,
        CAST($interval AS VARCHAR) AS interval,
        c.price_market,
        CASE c.price_market WHEN 'perp' THEN j.perp_close WHEN 'spot' THEN j.spot_close ELSE j.index_close END AS close,
        CASE c.price_market WHEN 'perp' THEN ln(j.perp_close / lag(j.perp_close) OVER w)
                            WHEN 'spot' THEN ln(j.spot_close / lag(j.spot_close) OVER w)
                            ELSE ln(j.index_close / lag(j.index_close) OVER w) END AS ret,
        j.bar_hours,
        j.funding_settlements,
        j.oi_secs / 3600.0 AS oi_interval_hours,
        (SELECT secs FROM liq_cover) / 3600.0 AS liq_interval_hours
    FROM fresh j, chosen c
    WINDOW w AS (ORDER BY j.ts)
),
inputs AS (
    -- one row: the chosen series, in a fixed order, and whether any of them is simulated
    SELECT CAST($inputs AS VARCHAR) AS inputs, CAST($synthetic AS BOOLEAN) AS synthetic
)
SELECT panel.* EXCLUDE (close, ret, bar_hours, funding_settlements, oi_interval_hours, liq_interval_hours, interval, price_market),
       panel.interval, panel.price_market, panel.close, panel.ret,
       panel.bar_hours, panel.funding_settlements, panel.oi_interval_hours, panel.liq_interval_hours,
       inputs.synthetic, inputs.inputs
FROM panel, inputs
WHERE panel.ts >= (SELECT min(ts) FROM spine) AND panel.ts < CAST($end AS TIMESTAMPTZ)
ORDER BY panel.ts
