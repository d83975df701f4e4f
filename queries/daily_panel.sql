-- One row per UTC day for one instrument: the hourly panel aggregated, plus spot Bitcoin ETF net
-- flows and sentiment, aligned without look-ahead. A US ETF flow dated D is published after the US
-- close, so row D carries the latest flow dated strictly before D (its date is in etf_flow_date).
-- The Fear & Greed value of day D is published at 00:00 UTC of D, so row D carries it.
-- param etf_product: ETF product, or TOTAL for all spot Bitcoin ETFs [default: TOTAL]
-- param sentiment_index: sentiment index name [default: fear_greed]
WITH
hp AS {{ hourly_panel }},
d AS (
    SELECT
        CAST(date_trunc('day', ts) AS DATE) AS date,
        any_value(symbol) AS symbol,
        first(perp_open ORDER BY ts) AS perp_open,
        max(perp_high) AS perp_high,
        min(perp_low) AS perp_low,
        last(perp_close ORDER BY ts) AS perp_close,
        sum(perp_ret) AS perp_ret,
        last(spot_close ORDER BY ts) AS spot_close,
        sum(spot_ret) AS spot_ret,
        sum(perp_volume) AS perp_volume,
        sum(spot_volume) AS spot_volume,
        sum(spot_volume) / nullif(sum(spot_volume) + sum(perp_volume), 0) AS spot_share,
        (2 * sum(perp_taker_buy_volume) - sum(perp_volume)) / nullif(sum(perp_volume), 0) AS taker_imbalance,
        sum(funding_settled) AS funding_settled_sum,
        count(funding_settled) AS funding_settlements,
        last(funding_rate ORDER BY ts) AS funding_rate,
        last(funding_rate_8h ORDER BY ts) AS funding_rate_8h,
        last(oi_base ORDER BY ts) AS oi_base,
        last(oi_usd ORDER BY ts) AS oi_usd,
        sum(liq_long_usd) AS liq_long_usd,
        sum(liq_short_usd) AS liq_short_usd,
        last(top_trader_ls_ratio ORDER BY ts) AS top_trader_ls_ratio,
        last(account_ls_ratio ORDER BY ts) AS account_ls_ratio,
        count(*) AS hours,
        bool_and(has_perp) AS has_perp, bool_and(has_spot) AS has_spot,
        bool_or(has_funding) AS has_funding, bool_or(has_oi) AS has_oi,
        bool_or(has_liq) AS has_liq, bool_or(has_positioning) AS has_positioning,
        bool_or(synthetic) AS synthetic,
        any_value(inputs) AS inputs
    FROM hp
    GROUP BY 1
),
etf AS (
    SELECT date AS flow_date, sum(flow_usd) AS flow_usd, bool_or(source = 'synthetic') AS synthetic
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
    w.* EXCLUDE (synthetic, inputs, etf_flow_usd, etf_flow_date),
    100 * (coalesce(w.oi_base, w.oi_usd) / lag(coalesce(w.oi_base, w.oi_usd)) OVER (ORDER BY w.date) - 1) AS oi_change_pct,
    CASE WHEN date_diff('day', w.etf_flow_date, w.date) <= 4 THEN w.etf_flow_usd END AS etf_flow_usd,
    w.etf_flow_date,
    fg.value AS fear_greed,
    fg.label AS fear_greed_label,
    w.synthetic, w.inputs
FROM with_etf w
LEFT JOIN fg ON fg.date = w.date
ORDER BY w.date
