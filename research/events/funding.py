"""Funding resets: the 8h-equivalent settled funding rate falls from elevated to at/below neutral."""
from __future__ import annotations

import polars as pl

from research.errors import EventDetectionError
from research.events._common import (NEUTRAL_FUNDING_8H, RATE_EPS, decluster, finish, hours_between, pct_change,
                                     positive, require, sorted_panel, symbol_of)
from research.oi import oi_coins

__all__ = ["detect_funding_resets", "FUNDING_COLUMNS"]

#: Columns after ``event_id, ts, symbol, asset, kind``, in order.
FUNDING_COLUMNS = ["detected_ts", "elevated_ts", "rate_before", "rate_after", "settlements_taken", "hours_taken",
                   "elevated_threshold", "oi_before", "oi_after", "oi_change_pct", "price_before",
                   "price_after", "price_change_pct", "oi_measure", "oi_method", "keep", "lookahead"]


def detect_funding_resets(
    panel: pl.DataFrame,
    *,
    elevated: float | None = 0.0003,
    elevated_k: float | None = None,
    elevated_pct: float | None = None,
    elevated_window_hours: float | None = None,
    min_history: int = 30,
    neutral: float = NEUTRAL_FUNDING_8H,
    within_settlements: int = 3,
    min_spacing_hours: float | None = 24,
    price_col: str = "perp_close",
    symbol: str | None = None,
) -> pl.DataFrame:
    """Funding resets: a settlement at or below ``neutral`` soon after an elevated one.

    A settlement is *elevated* when its rate per 8 h (``funding_settled * 8 /
    funding_interval_hours``, or the panel's ``funding_rate_8h``) is at or above the threshold and
    above ``neutral``. A reset is the first settlement at or below ``neutral`` that follows an
    elevated settlement within ``within_settlements`` settlements. It is known at its settlement.

    Parameters
    ----------
    panel : polars.DataFrame
        Panel (``ts``, ``funding_settled``, ``funding_rate_8h`` or ``funding_interval_hours``,
        ``price_col``; OI columns optional). Any bar length: the rows holding a settlement count.
    elevated : float, optional
        Absolute threshold per 8 h (default 0.0003 = 3x neutral); used when neither ``elevated_k``
        nor ``elevated_pct`` is given.
    elevated_k : float, optional
        Threshold = ``elevated_k * 0.0001`` (k times Binance's neutral rate); before ``elevated``.
    elevated_pct : float, optional
        Threshold = this percentile (0-100) of the *earlier* settled 8h rates (within
        ``elevated_window_hours``, all earlier ones when None; at least ``min_history`` of them),
        so it uses no later data; takes precedence over both.
    elevated_window_hours : float, optional
        Look-back of the percentile rule (clock hours).
    min_history : int
        Earlier settlements the percentile rule needs before it can call one elevated.
    neutral : float
        Neutral level per 8 h (0.0001 on Binance).
    within_settlements : int
        Maximum number of settlements from the last elevated one to the reset; the clock time
        between them must also be at most ``within_settlements`` settlement intervals, so a data
        gap cannot bridge two far-apart settlements.
    min_spacing_hours : float or None
        De-clustering, causal: a reset less than this after the previous kept one is dropped.
    price_col : str
        Price column (and the price that turns USD OI into coins, see :mod:`research.oi`).
    symbol : str, optional
        Symbol for the table.

    Returns
    -------
    polars.DataFrame
        ``event_id, ts, symbol, asset, kind`` then :data:`FUNDING_COLUMNS`. ``ts = detected_ts`` is
        the bar holding the reset settlement (known at its close); every column uses bars up to it:
        ``elevated_ts`` (the last elevated settlement), ``rate_before`` (its 8h rate),
        ``rate_after`` (the reset's), ``settlements_taken``, ``hours_taken``,
        ``elevated_threshold`` (the threshold in force at ``elevated_ts``), ``oi_before/oi_after/
        oi_change_pct`` (OI in coins at the two bars), ``price_before/price_after/
        price_change_pct``, ``oi_measure = "coins"``, ``oi_method``.

    Raises
    ------
    EventDetectionError
        Missing columns or an invalid parameter (e.g. an absolute threshold not above neutral).

    Notes
    -----
    Bars without a settlement are ignored (funding is a settlement series); a settlement whose
    rate is null is dropped. OI/price attributes are null where the panel has none.
    """
    name = "detect_funding_resets"
    require(panel, ["ts", "funding_settled", price_col], name)
    if "funding_interval_hours" not in panel.columns and "funding_rate_8h" not in panel.columns:
        raise EventDetectionError(f"{name}: panel needs funding_interval_hours or funding_rate_8h "
                                  "to express settled rates per 8 h")
    for p, v in (("elevated_k", elevated_k), ("within_settlements", within_settlements),
                 ("elevated_window_hours", elevated_window_hours)):
        positive(p, v, name)
    positive("min_spacing_hours", min_spacing_hours, name, allow_zero=True)
    positive("min_history", min_history, name, allow_zero=True)
    if elevated_pct is not None and not 0 < elevated_pct < 100:
        raise EventDetectionError(f"{name}: elevated_pct={elevated_pct!r} must be a percentile in (0, 100)")
    if elevated is None and elevated_k is None and elevated_pct is None:
        raise EventDetectionError(f"{name}: give one of elevated, elevated_k, elevated_pct")
    if elevated_pct is None:
        fixed = elevated_k * NEUTRAL_FUNDING_8H if elevated_k is not None else float(elevated)
        if not fixed > neutral:
            raise EventDetectionError(f"{name}: the elevated threshold {fixed!r} must lie above neutral={neutral!r}")
    sym = symbol_of(panel, symbol)
    df = sorted_panel(panel)
    has_oi = any(c in df.columns for c in ("oi_base", "oi_usd"))
    series = oi_coins(df, price_col=price_col) if has_oi else None
    if series is not None:
        df = df.with_columns(series.frame["oi_coins"].alias("_oi"))
    else:
        df = df.with_columns(pl.lit(None, pl.Float64).alias("_oi"))
    if "funding_interval_hours" in df.columns:
        rate8 = pl.col("funding_settled") * 8.0 / pl.col("funding_interval_hours")
        ivh = pl.col("funding_interval_hours").cast(pl.Float64)
        if "funding_rate_8h" in df.columns:
            rate8 = pl.coalesce(rate8, pl.col("funding_rate_8h"))
    else:
        rate8, ivh = pl.col("funding_rate_8h"), pl.lit(8.0)
    st = (df.filter(pl.col("funding_settled").is_not_null())
          .select("ts", rate8.cast(pl.Float64).alias("r"), ivh.fill_null(8.0).alias("ivh"),
                  pl.col(price_col).alias("_px"), "_oi")
          .filter(pl.col("r").is_not_null()))
    st = st.with_columns(_threshold(st, elevated_pct, elevated_window_hours, min_history,
                                    fixed=None if elevated_pct is not None else fixed).alias("thr"))
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    is_elev = (pl.col("r") >= pl.col("thr") - RATE_EPS) & (pl.col("r") > neutral + RATE_EPS)
    st = st.with_columns(idx.alias("i")).with_columns(
        pl.when(is_elev.fill_null(False)).then(pl.col("i")).forward_fill().shift(1).alias("last_elev"),
        pl.when(pl.col("r") <= neutral + RATE_EPS).then(pl.col("i")).forward_fill().shift(1).alias("last_neut"),
    )
    ev = st.filter(
        (pl.col("r") <= neutral + RATE_EPS)
        & pl.col("last_elev").is_not_null()
        & ((pl.col("i") - pl.col("last_elev")) <= within_settlements)
        # the first neutral settlement after the elevated one
        & (pl.col("last_neut").is_null() | (pl.col("last_neut") < pl.col("last_elev")))
    )
    before = st.select(pl.col("i").alias("last_elev"), pl.col("ts").alias("elevated_ts"),
                       pl.col("r").alias("rate_before"), pl.col("_oi").alias("oi_before"),
                       pl.col("_px").alias("price_before"), pl.col("thr").alias("elevated_threshold"))
    ev = (ev.join(before, on="last_elev", how="left")
          .with_columns((pl.col("i") - pl.col("last_elev")).alias("settlements_taken"),
                        hours_between("elevated_ts", "ts").alias("hours_taken"))
          .filter(pl.col("hours_taken") <= within_settlements * pl.col("ivh") + 1e-9)
          .rename({"r": "rate_after", "_oi": "oi_after", "_px": "price_after"})
          .with_columns(pct_change("oi_before", "oi_after").alias("oi_change_pct"),
                        pct_change("price_before", "price_after").alias("price_change_pct"),
                        pl.col("ts").alias("detected_ts"), pl.lit("coins").alias("oi_measure"),
                        pl.lit(series.method if series else "none").alias("oi_method"),
                        pl.lit("first").alias("keep"), pl.lit(False).alias("lookahead")))
    ev = decluster(ev.select("ts", *FUNDING_COLUMNS), min_spacing_hours)
    return finish(ev, "funding_reset", sym, FUNDING_COLUMNS)


def _threshold(st: pl.DataFrame, pct: float | None, window_hours: float | None, min_history: int,
               fixed: float | None) -> pl.Expr:
    """Elevated threshold per settlement: fixed, or a percentile of strictly earlier settlements."""
    if pct is None:
        return pl.lit(float(fixed))
    if window_hours is None:   # expanding: a window longer than the panel
        span = (st["ts"].max() - st["ts"].min()).total_seconds() if st.height else 0
        secs = int(span) + 3600
    else:
        secs = int(round(window_hours * 3600))
    w = f"{secs}s"
    q = pl.col("r").rolling_quantile_by("ts", window_size=w, quantile=pct / 100.0, closed="left",
                                        interpolation="linear")
    n = pl.col("r").is_not_null().cast(pl.Int64).rolling_sum_by("ts", window_size=w, closed="left")
    return pl.when(n.fill_null(0) >= max(1, min_history)).then(q)
