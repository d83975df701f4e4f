-- Funding settlements of one symbol, one row per settlement: the rate, its 8-hour equivalent and
-- annualised value, the settlement hour (published times carry a few ms of jitter, so join on the
-- hour, never on exact ms), and the perp close of the hour before settlement.
-- param symbol: perpetual symbol, e.g. BTCUSDT
-- param start: first settlement, UTC, inclusive [default: 1970-01-01]
-- param end: end, UTC, exclusive [default: 2100-01-01]
-- param venue: venue; null returns every venue [default: null]
SELECT
    f.ts,
    date_trunc('hour', f.ts) AS settle_hour,
    f.venue,
    f.symbol,
    f.rate,
    f.interval_hours,
    f.rate * 8.0 / f.interval_hours AS rate_8h,
    f.rate * (24.0 / f.interval_hours) * 365 AS rate_annualised,
    b.close AS perp_close_before,
    f.source
FROM funding f
LEFT JOIN bars b
    ON b.market = 'perp' AND b.interval = '1h' AND b.symbol = f.symbol AND b.venue = f.venue
   AND b.ts = date_trunc('hour', f.ts) - INTERVAL 1 HOUR
WHERE f.symbol = CAST($symbol AS VARCHAR)
  AND f.ts >= CAST($start AS TIMESTAMPTZ) AND f.ts < CAST($end AS TIMESTAMPTZ)
  AND (CAST($venue AS VARCHAR) IS NULL OR f.venue = CAST($venue AS VARCHAR))
QUALIFY row_number() OVER (PARTITION BY f.venue, f.symbol, f.ts ORDER BY f.source, b.source) = 1
ORDER BY f.ts, f.venue
