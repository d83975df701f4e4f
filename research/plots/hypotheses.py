"""Charts of the hypotheses (:mod:`research.hypotheses`); the numbers come computed."""
from __future__ import annotations

import polars as pl

from .base import _fd, _need, _titled, alt

def plot_flush_vs_exodus(
    forward: pl.DataFrame,
    means: pl.DataFrame,
    *,
    title: str = "Forward returns after the trough: leverage flush vs spot exodus",
    synthetic: bool = False,
) -> alt.LayerChart:
    """Forward returns per event (dots) and class means with 95 % CIs, per horizon, by class.

    Parameters
    ----------
    forward : polars.DataFrame
        ``event_id, label, horizon_h, car`` (one row per event and horizon).
    means : polars.DataFrame
        ``horizon_h, label, mean, ci_low, ci_high`` (computed in :mod:`research.hypotheses`).
    """
    _need(forward, ["label", "horizon_h", "car"], "plot_flush_vs_exodus")
    _need(means, ["label", "horizon_h", "mean", "ci_low", "ci_high"], "plot_flush_vs_exodus")
    colors = alt.Scale(domain=["flush", "exodus"], range=["#d62728", "#1f77b4"])
    x = alt.X("horizon_h:O", title="hours after the trough (decision hour)")
    off = alt.XOffset("label:N", scale=alt.Scale(domain=["flush", "exodus"]))
    col = alt.Color("label:N", title="class", scale=colors)
    pts = alt.Chart(_fd(forward.select("event_id", "label", "horizon_h", "car"))).mark_circle(
        size=40, opacity=0.55).encode(x=x, xOffset=off, color=col,
                                      y=alt.Y("car:Q", title="cumulative log return, %", axis=alt.Axis(format="%")),
                                      tooltip=["event_id:Q", "label:N", "horizon_h:O", alt.Tooltip("car:Q", format=".4f")])
    m = _fd(means.select("label", "horizon_h", "mean", "ci_low", "ci_high"))
    err = alt.Chart(m).mark_rule(strokeWidth=2.5).encode(x=x, xOffset=off, color=col, y="ci_low:Q", y2="ci_high:Q")
    mid = alt.Chart(m).mark_point(shape="diamond", size=140, filled=True, opacity=1).encode(
        x=x, xOffset=off, color=col, y="mean:Q",
        tooltip=["label:N", "horizon_h:O", alt.Tooltip("mean:Q", format=".4f"),
                 alt.Tooltip("ci_low:Q", format=".4f"), alt.Tooltip("ci_high:Q", format=".4f")])
    zero = alt.Chart(m).mark_rule(strokeDash=[4, 4], color="#666").encode(y=alt.datum(0))
    return alt.layer(zero, pts, err, mid).properties(
        width=560, height=280, title=_titled(title, synthetic, "dots: sell-offs; diamonds: class mean with 95% bootstrap CI"))


def plot_conditional_rates(
    rates: pl.DataFrame,
    *,
    title: str,
    y_title: str = "share",
    baseline_group: str | None = None,
    synthetic: bool = False,
) -> alt.LayerChart:
    """Bar chart of proportions by group with their CIs (``group, n, rate, ci_low, ci_high``).

    ``baseline_group`` names the row drawn as a dashed reference line (e.g. the base rate).
    """
    _need(rates, ["group", "rate", "ci_low", "ci_high", "n"], "plot_conditional_rates")
    src = _fd(rates.select("group", "n", "rate", "ci_low", "ci_high"))
    order = rates["group"].to_list()
    x = alt.X("group:N", sort=order, title=None, axis=alt.Axis(labelAngle=-20, labelLimit=220))
    bars = alt.Chart(src).mark_bar(opacity=0.8).encode(
        x=x, y=alt.Y("rate:Q", title=f"{y_title}, %", axis=alt.Axis(format="%")), tooltip=["group:N", "n:Q", alt.Tooltip("rate:Q", format=".3f"),
                                                        alt.Tooltip("ci_low:Q", format=".3f"),
                                                        alt.Tooltip("ci_high:Q", format=".3f")])
    err = alt.Chart(src).mark_rule(color="#333", strokeWidth=1.5).encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    txt = alt.Chart(src).mark_text(dy=-6, fontSize=10, color="#333", baseline="bottom").encode(
        x=x, y="ci_high:Q", text=alt.Text("n:Q", format="d"))
    layers = [bars, err, txt]
    if baseline_group is not None:
        base = rates.filter(pl.col("group") == baseline_group).select("rate")
        if base.height:
            layers.append(alt.Chart(_fd(base)).mark_rule(strokeDash=[5, 4], color="#d62728").encode(y="rate:Q"))
    return alt.layer(*layers).properties(width=520, height=240,
                                         title=_titled(title, synthetic, "bars: share with 95% CI; labels: n"))


def plot_hour_profile(profile: pl.DataFrame, *, title: str = "Hour-of-day profile (UTC) around funding settlements",
                      synthetic: bool = False) -> alt.VConcatChart:
    """Per metric, the mean by UTC hour with HAC 95 % CIs; settlement-window hours highlighted.

    ``profile``: ``metric, hour, mean, ci_low, ci_high, in_window`` (from :func:`research.hypotheses.settlement_hours`).
    """
    _need(profile, ["metric", "hour", "mean", "ci_low", "ci_high", "in_window"], "plot_hour_profile")
    # metric -> (axis title with its unit, axis format): returns are shown in % of price
    labels = {"log_volume": ("log perp volume (ln BTC per hour)", None),
              "abs_ret": ("|hourly log return|, %", "%"), "ret": ("hourly log return, %", "%")}
    charts = []
    for m in dict.fromkeys(profile["metric"].to_list()):
        sub = profile.filter(pl.col("metric") == m).select("hour", "mean", "ci_low", "ci_high", "in_window")
        src = _fd(sub.with_columns(pl.when(pl.col("in_window")).then(pl.lit("settlement ±window"))
                                    .otherwise(pl.lit("other hours")).alias("hours")))
        col = alt.Color("hours:N", scale=alt.Scale(domain=["settlement ±window", "other hours"],
                                                   range=["#d62728", "#1f77b4"]), title=None)
        x = alt.X("hour:O", title="hour of day (UTC, bar open)")
        name, fmt = labels.get(m, (m, None))
        err = alt.Chart(src).mark_rule().encode(x=x, y=alt.Y("ci_low:Q", title=name, axis=alt.Axis(format=fmt) if fmt else alt.Undefined,
                                                              scale=alt.Scale(zero=False)), y2="ci_high:Q", color=col)
        pt = alt.Chart(src).mark_point(filled=True, size=50).encode(
            x=x, y="mean:Q", color=col, tooltip=["hour:O", alt.Tooltip("mean:Q", format=".5f")])
        charts.append(alt.layer(err, pt).properties(width=600, height=140))
    return alt.vconcat(*charts, spacing=6).properties(title=_titled(title, synthetic, "mean with HAC 95% CI"))


def plot_acf(acf: pl.DataFrame, *, title: str = "Autocorrelation of liquidations", synthetic: bool = False,
             bucket: str | None = None) -> alt.LayerChart:
    """ACF bars of log1p(liquidation USD) and of the print indicator with the ±1.96/sqrt(n) band.

    ``acf``: ``lag, acf_usd, acf_print, band`` (from :func:`research.hypotheses.liquidation_waves`);
    ``bucket`` (``"4h"``) is the length of one lag, stated in the x-axis title.
    """
    _need(acf, ["lag", "acf_usd", "acf_print", "band"], "plot_acf")
    sub = acf.filter(pl.col("lag") > 0)
    long = pl.concat([
        sub.select("lag", pl.lit("log1p(USD)").alias("series"), pl.col("acf_usd").alias("acf")),
        sub.select("lag", pl.lit("print indicator").alias("series"), pl.col("acf_print").alias("acf")),
    ])
    src = _fd(long)
    bars = alt.Chart(src).mark_bar().encode(
        x=alt.X("lag:O", title=f"lag ({bucket} buckets)" if bucket else "lag (buckets)"), xOffset="series:N", y=alt.Y("acf:Q", title="autocorrelation"),
        color=alt.Color("series:N", title=None), tooltip=["series:N", "lag:O", alt.Tooltip("acf:Q", format=".3f")])
    b = float(acf["band"][0]) if acf.height else 0.0
    band = _fd(pl.DataFrame({"y": [b, -b]}))
    rules = alt.Chart(band).mark_rule(strokeDash=[4, 4], color="#666").encode(y="y:Q")
    return alt.layer(bars, rules).properties(width=560, height=220,
                                             title=_titled(title, synthetic, "dashed: ±1.96/sqrt(n)"))


MAX_HEATMAP_CELLS = 20_000


def plot_liquidation_heatmap(
    heat: pl.DataFrame,
    price: pl.DataFrame,
    *,
    targets: pl.DataFrame | None = None,
    title: str = "Modelled liquidation levels under price",
    synthetic: bool = False,
) -> alt.LayerChart:
    """Heatmap of modelled liquidation USD (price bins x time blocks) with the price line on top.

    Parameters
    ----------
    heat : polars.DataFrame
        ``t0, t1, p0, p1, usd`` cells, already aggregated (at most :data:`MAX_HEATMAP_CELLS`),
        e.g. ``LiquidationHeatmap.frame()``.
    price : polars.DataFrame
        ``ts, close`` (thinned).
    targets : polars.DataFrame, optional
        ``ts, cluster_level, cluster_hit``: the test targets, drawn as points.
    """
    _need(heat, ["t0", "t1", "p0", "p1", "usd"], "plot_liquidation_heatmap")
    _need(price, ["ts", "close"], "plot_liquidation_heatmap")
    if heat.height > MAX_HEATMAP_CELLS:
        raise ValueError(f"plot_liquidation_heatmap: {heat.height} cells > {MAX_HEATMAP_CELLS}; aggregate first "
                         "(LiquidationHeatmap.frame(max_cells=...))")
    lo = float(min(price["close"].min(), heat["p0"].min())) if heat.height else float(price["close"].min())
    hi = float(max(price["close"].max(), heat["p1"].max())) if heat.height else float(price["close"].max())
    y_scale = alt.Scale(domain=[lo, hi], zero=False)
    rect = alt.Chart(_fd(heat)).mark_rect().encode(
        x=alt.X("t0:T", title=None, axis=alt.Axis(format="%Y-%m-%d", labelAngle=0)), x2="t1:T",
        y=alt.Y("p0:Q", title="price (USD)", scale=y_scale), y2="p1:Q",
        color=alt.Color("usd:Q", title=["modelled", "liquidations (USD)"], scale=alt.Scale(type="sqrt", scheme="inferno"),
                        legend=alt.Legend(orient="right", format="~s")))
    line = alt.Chart(_fd(price)).mark_line(color="#00e5ff", strokeWidth=1.2).encode(x="ts:T", y=alt.Y("close:Q", scale=y_scale))
    layers = [rect, line]
    if targets is not None and targets.height:
        t = targets.with_columns(pl.when(pl.col("cluster_hit")).then(pl.lit("reached")).otherwise(pl.lit("not reached"))
                                 .alias("target"))
        layers.append(alt.Chart(_fd(t.select("ts", "cluster_level", "target"))).mark_point(
            shape="triangle-right", filled=True, size=60).encode(
            x="ts:T", y=alt.Y("cluster_level:Q", scale=y_scale),
            color=alt.Color("target:N", scale=alt.Scale(domain=["reached", "not reached"], range=["#7CFC00", "#bbbbbb"]),
                            title="largest nearby cluster"),
            tooltip=["ts:T", alt.Tooltip("cluster_level:Q", format=",.0f"), "target:N"]))
    return alt.layer(*layers).resolve_scale(color="independent").properties(
        width=720, height=340, title=_titled(title, synthetic, "cells: time blocks x price bins, aggregated before plotting"))
