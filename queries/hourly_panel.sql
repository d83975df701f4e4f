-- One row per UTC hour for one instrument: perp and spot prices and returns, volumes and spot share,
-- taker imbalance, funding, open interest, liquidations and positioning, aligned without look-ahead.
-- Row ts is the hour's open; every slower series is taken as known at the hour's close (ts + 1 h):
-- OI and positioning as-of their observation instant, funding as the last settlement at or before the
-- close, liquidation buckets in the hour that contains the bucket's end. An as-of value older than two
-- of its series' intervals is dropped (null), so a series that stops is missing, not frozen. For each input one series
-- is chosen (exact symbol before the coin-level aggregate, e.g. BTC; the bars' venue first; then the
-- longest series); the chosen series are listed in the column `inputs`.
-- param symbol: instrument, e.g. BTCUSDT
-- param start: first hour, UTC, inclusive [default: 1970-01-01]
-- param end: end, UTC, exclusive [default: 2100-01-01]
-- param venue: venue of the bars, funding and positioning [default: binance]
-- param oi_venue: venue of the open-interest series (e.g. all); null picks the best available [default: null]
-- param liq_venue: venue of the liquidation series; null picks the best available [default: null]
-- param source: use only this source for every input (e.g. synthetic); null picks the best available [default: null]
WITH
p AS (
    SELECT CAST($symbol AS VARCHAR) AS symbol,
           regexp_replace(CAST($symbol AS VARCHAR), '(USDT|USDC|BUSD|FDUSD|USD)$', '') AS coin,
           CAST($start AS TIMESTAMPTZ) AS t0,
           CAST($end AS TIMESTAMPTZ) AS t1,
           CAST($venue AS VARCHAR) AS venue,
           CAST($oi_venue AS VARCHAR) AS oi_venue,
           CAST($liq_venue AS VARCHAR) AS liq_venue,
           CAST($source AS VARCHAR) AS src
),
iv(interval, secs) AS (
    VALUES ('1m', 60), ('3m', 180), ('5m', 300), ('15m', 900), ('30m', 1800), ('1h', 3600),
           ('2h', 7200), ('4h', 14400), ('6h', 21600), ('8h', 28800), ('12h', 43200), ('1d', 86400)
),
bar_series AS (
    SELECT b.market, b.source, count(*) AS n,
           row_number() OVER (PARTITION BY b.market ORDER BY count(*) DESC, b.source) AS rk
    FROM bars b, p
    WHERE b.market IN ('perp', 'spot') AND b.interval = '1h' AND b.symbol = p.symbol
      AND b.venue = p.venue AND (p.src IS NULL OR b.source = p.src)
    GROUP BY b.market, b.source
),
bars_1h AS (
    SELECT b.*
    FROM bars b
    JOIN bar_series s ON s.rk = 1 AND s.market = b.market AND s.source = b.source, p
    WHERE b.interval = '1h' AND b.symbol = p.symbol AND b.venue = p.venue
      AND b.ts >= p.t0 - INTERVAL 1 HOUR AND b.ts < p.t1
),
perp AS (SELECT * FROM bars_1h WHERE market = 'perp'),
spot AS (SELECT * FROM bars_1h WHERE market = 'spot'),
span AS (
    SELECT greatest(min(ts), (SELECT t0 FROM p)) AS lo, max(ts) AS hi
    FROM (SELECT ts FROM perp UNION ALL SELECT ts FROM spot)
),
spine AS (
    SELECT unnest(generate_series(date_trunc('hour', lo), hi, INTERVAL 1 HOUR)) AS ts
    FROM span WHERE lo IS NOT NULL AND lo <= hi
),
grid AS (
    -- one extra hour before the first row, so the first return is defined
    SELECT ts, ts + INTERVAL 1 HOUR AS known_at FROM spine
    UNION ALL
    SELECT min(ts) - INTERVAL 1 HOUR, min(ts) FROM spine HAVING count(*) > 0
),
-- choose one series per slower input -------------------------------------------------------------
fund_series AS (
    SELECT f.source, f.venue, f.symbol
    FROM funding f, p
    WHERE f.symbol IN (p.symbol, p.coin) AND (p.src IS NULL OR f.source = p.src)
    GROUP BY f.source, f.venue, f.symbol, p.symbol, p.venue
    ORDER BY (f.symbol = p.symbol) DESC, (f.venue = p.venue) DESC, count(*) DESC, f.source, f.venue
    LIMIT 1
),
oi_series AS (
    SELECT o.source, o.venue, o.symbol, o.interval
    FROM open_interest o, p
    WHERE o.symbol IN (p.symbol, p.coin) AND (p.oi_venue IS NULL OR o.venue = p.oi_venue)
      AND (p.src IS NULL OR o.source = p.src)
    GROUP BY o.source, o.venue, o.symbol, o.interval, p.symbol, p.venue
    ORDER BY (o.symbol = p.symbol) DESC, (o.venue = p.venue) DESC, count(*) DESC, o.source, o.venue, o.interval
    LIMIT 1
),
liq_series AS (
    SELECT l.source, l.venue, l.symbol, l.interval
    FROM liquidations l, p
    WHERE l.symbol IN (p.symbol, p.coin) AND (p.liq_venue IS NULL OR l.venue = p.liq_venue)
      AND (p.src IS NULL OR l.source = p.src)
    GROUP BY l.source, l.venue, l.symbol, l.interval, p.symbol, p.venue
    ORDER BY (l.symbol = p.symbol) DESC, (l.venue = p.venue) DESC, count(*) DESC, l.source, l.venue, l.interval
    LIMIT 1
),
pos_series AS (
    SELECT x.source, x.venue, x.symbol, x.interval
    FROM positioning x, p
    WHERE x.symbol IN (p.symbol, p.coin) AND (p.src IS NULL OR x.source = p.src)
    GROUP BY x.source, x.venue, x.symbol, x.interval, p.symbol, p.venue
    ORDER BY (x.symbol = p.symbol) DESC, (x.venue = p.venue) DESC, count(*) DESC, x.source, x.venue, x.interval
    LIMIT 1
),
fund AS (SELECT f.* FROM funding f JOIN fund_series USING (source, venue, symbol)),
oi AS (SELECT o.*, iv.secs AS iv_secs FROM open_interest o JOIN oi_series USING (source, venue, symbol, interval) JOIN iv USING (interval)),
pos AS (SELECT x.*, iv.secs AS iv_secs FROM positioning x JOIN pos_series USING (source, venue, symbol, interval) JOIN iv USING (interval)),
liq AS (
    -- a bucket is known when it ends: give it to the hour that contains its end
    SELECT date_trunc('hour', l.ts + to_seconds(iv.secs) - INTERVAL 1 MICROSECOND) AS hour,
           sum(l.long_usd) AS long_usd, sum(l.short_usd) AS short_usd, CAST(sum(l.count) AS BIGINT) AS n
    FROM liquidations l JOIN liq_series USING (source, venue, symbol, interval) JOIN iv USING (interval)
    GROUP BY 1
),
liq_cover AS (
    SELECT min(l.ts) AS lo, max(l.ts + to_seconds(iv.secs)) AS hi
    FROM liquidations l JOIN liq_series USING (source, venue, symbol, interval) JOIN iv USING (interval)
),
settled AS (
    SELECT date_trunc('hour', ts) AS hour, last(rate ORDER BY ts) AS rate
    FROM fund GROUP BY 1
),
joined AS (
    SELECT g.ts, g.known_at,
           pe.open AS perp_open, pe.high AS perp_high, pe.low AS perp_low, pe.close AS perp_close,
           pe.volume AS perp_volume, pe.quote_volume AS perp_quote_volume,
           pe.taker_buy_volume AS perp_taker_buy_volume,
           sp.close AS spot_close, sp.volume AS spot_volume, sp.quote_volume AS spot_quote_volume,
           sp.taker_buy_volume AS spot_taker_buy_volume,
           f.rate AS funding_rate, f.interval_hours AS funding_interval_hours, f.ts AS funding_ts,
           st.rate AS funding_settled,
           o.oi_base, o.oi_usd, o.ts AS oi_ts, o.iv_secs AS oi_secs,
           lq.long_usd, lq.short_usd, lq.n AS liq_n,
           x.top_trader_ls_ratio, x.account_ls_ratio, x.taker_buy_sell_ratio, x.ts AS pos_ts, x.iv_secs AS pos_secs
    FROM grid g
    LEFT JOIN perp pe ON pe.ts = g.ts
    LEFT JOIN spot sp ON sp.ts = g.ts
    ASOF LEFT JOIN fund f ON g.known_at >= f.ts
    LEFT JOIN settled st ON st.hour = g.ts
    ASOF LEFT JOIN oi o ON g.known_at >= o.ts
    LEFT JOIN liq lq ON lq.hour = g.ts
    ASOF LEFT JOIN pos x ON g.known_at >= x.ts
),
fresh AS (
    -- an as-of value is carried forward only while it is younger than two of its series' intervals,
    -- so a series that stops (end of coverage, outage) reads as missing instead of frozen
    SELECT * REPLACE (
        CASE WHEN date_diff('second', funding_ts, known_at) <= 7200 * funding_interval_hours THEN funding_rate END AS funding_rate,
        CASE WHEN date_diff('second', funding_ts, known_at) <= 7200 * funding_interval_hours THEN funding_interval_hours END AS funding_interval_hours,
        CASE WHEN date_diff('second', funding_ts, known_at) <= 7200 * funding_interval_hours THEN funding_ts END AS funding_ts,
        CASE WHEN date_diff('second', oi_ts, known_at) <= 2 * oi_secs THEN oi_base END AS oi_base,
        CASE WHEN date_diff('second', oi_ts, known_at) <= 2 * oi_secs THEN oi_usd END AS oi_usd,
        CASE WHEN date_diff('second', oi_ts, known_at) <= 2 * oi_secs THEN oi_ts END AS oi_ts,
        CASE WHEN date_diff('second', pos_ts, known_at) <= 2 * pos_secs THEN top_trader_ls_ratio END AS top_trader_ls_ratio,
        CASE WHEN date_diff('second', pos_ts, known_at) <= 2 * pos_secs THEN account_ls_ratio END AS account_ls_ratio,
        CASE WHEN date_diff('second', pos_ts, known_at) <= 2 * pos_secs THEN taker_buy_sell_ratio END AS taker_buy_sell_ratio,
        CASE WHEN date_diff('second', pos_ts, known_at) <= 2 * pos_secs THEN pos_ts END AS pos_ts
    )
    FROM joined
),
panel AS (
    SELECT
        j.ts,
        (SELECT symbol FROM p) AS symbol,
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
        CASE WHEN j.ts >= (SELECT lo FROM liq_cover) AND j.known_at <= (SELECT hi FROM liq_cover) + INTERVAL 1 HOUR
             THEN j.long_usd END AS liq_long_usd,
        CASE WHEN j.ts >= (SELECT lo FROM liq_cover) AND j.known_at <= (SELECT hi FROM liq_cover) + INTERVAL 1 HOUR
             THEN j.short_usd END AS liq_short_usd,
        j.liq_n AS liq_count,
        j.top_trader_ls_ratio, j.account_ls_ratio, j.taker_buy_sell_ratio,
        j.perp_close IS NOT NULL AS has_perp,
        j.spot_close IS NOT NULL AS has_spot,
        j.funding_rate IS NOT NULL AS has_funding,
        j.oi_ts IS NOT NULL AS has_oi,
        j.ts >= (SELECT lo FROM liq_cover) AND j.known_at <= (SELECT hi FROM liq_cover) + INTERVAL 1 HOUR AS has_liq,
        j.pos_ts IS NOT NULL AS has_positioning
    FROM fresh j
    WINDOW w AS (ORDER BY j.ts)
),
inputs AS (
    SELECT concat_ws('; ',
        (SELECT 'perp=' || source FROM bar_series WHERE market = 'perp' AND rk = 1),
        (SELECT 'spot=' || source FROM bar_series WHERE market = 'spot' AND rk = 1),
        (SELECT 'funding=' || source || '/' || venue || '/' || symbol FROM fund_series),
        (SELECT 'oi=' || source || '/' || venue || '/' || symbol || '/' || interval FROM oi_series),
        (SELECT 'liquidations=' || source || '/' || venue || '/' || symbol || '/' || interval FROM liq_series),
        (SELECT 'positioning=' || source || '/' || venue || '/' || symbol || '/' || interval FROM pos_series)
    ) AS inputs,
    coalesce((SELECT bool_or(source = 'synthetic') FROM (
        SELECT source FROM bar_series WHERE rk = 1 UNION ALL SELECT source FROM fund_series
        UNION ALL SELECT source FROM oi_series UNION ALL SELECT source FROM liq_series
        UNION ALL SELECT source FROM pos_series)), FALSE) AS synthetic
)
SELECT panel.*, inputs.synthetic, inputs.inputs
FROM panel, inputs, p
WHERE panel.ts >= (SELECT min(ts) FROM spine) AND panel.ts < p.t1
ORDER BY panel.ts
