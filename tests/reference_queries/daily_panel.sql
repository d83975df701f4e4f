-- One row per UTC day for one instrument: `panel` at interval 1d (daily bars where the lake has them,
-- else complete days of finer bars), plus spot Bitcoin ETF net flows and sentiment, aligned without
-- look-ahead. A US ETF flow dated D is published after the US close, so row D carries the latest flow
-- dated strictly before D (its date is in etf_flow_date). The Fear & Greed value of day D is published
-- at 00:00 UTC of D, so row D carries it.
-- const interval: 1d
-- param etf_product: ETF product, or TOTAL for all spot Bitcoin ETFs [default: TOTAL]
-- param sentiment_index: sentiment index name [default: fear_greed]
WITH
d AS (
    SELECT CAST(ts AS DATE) AS date, symbol, perp_open, perp_high, perp_low, perp_close, perp_ret,
           spot_close, spot_ret, perp_volume, spot_volume, spot_share, taker_imbalance,
           funding_settled AS funding_settled_sum, funding_settlements,
           funding_rate, funding_rate_8h, oi_base, oi_usd, liq_long_usd, liq_short_usd,
           top_trader_ls_ratio, account_ls_ratio, bar_hours AS hours,
           has_perp, has_spot, has_funding, has_oi, has_liq, has_positioning, oi_change_pct,
           price_market, close, ret, synthetic, inputs
    FROM {{ panel }}
),
etf AS (
    SELECT date AS flow_date, sum(flow_usd) AS flow_usd
    FROM etf_flows
    WHERE product = CAST($etf_product AS VARCHAR)
    GROUP BY 1
),
fg AS (
    SELECT date, last(value ORDER BY source) AS value, last(label ORDER BY source) AS label
    FROM sentiment
    WHERE "index" = CAST($sentiment_index AS VARCHAR)
    GROUP BY 1
),
with_etf AS (
    SELECT d.*, e.flow_usd AS etf_flow_usd, e.flow_date AS etf_flow_date
    FROM d ASOF LEFT JOIN etf e ON d.date > e.flow_date
)
SELECT
    w.* EXCLUDE (price_market, close, ret, synthetic, inputs, etf_flow_usd, etf_flow_date),
    CASE WHEN date_diff('day', w.etf_flow_date, w.date) <= 4 THEN w.etf_flow_usd END AS etf_flow_usd,
    w.etf_flow_date,
    fg.value AS fear_greed,
    fg.label AS fear_greed_label,
    w.price_market, w.close, w.ret,
    w.synthetic, w.inputs
FROM with_etf w
LEFT JOIN fg ON fg.date = w.date
ORDER BY w.date
