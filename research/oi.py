"""One open-interest measure: OI in coins (base units), so a price fall alone is no OI fall.

Policy (used by every detector; hypotheses and plots are to adopt it):

1. where the panel's ``oi_base`` is observed, OI in coins is ``oi_base`` (method ``"oi_base"``);
2. otherwise it is ``oi_usd`` divided by the close at the OI observation instant (method
   ``"oi_usd/price"``, flagged ``approximate``): the panel carries ``oi_age_hours`` (hours from the
   observation to the bar's close), so the matching close is the one of the last bar that closed at
   or before the observation. Without ``oi_age_hours`` the bar's own close is used
   (``"oi_usd/close"``). For a cross-venue USD aggregate that includes inverse (coin-margined)
   contracts, dividing by one venue's price is an approximation; the flag says so.

A panel mixing both (``oi_base`` on some rows only) gets method ``"mixed"``; the per-row method is in
the frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from research.errors import EventDetectionError

__all__ = ["OISeries", "oi_coins", "METHODS"]

#: Per-row methods, in order of preference.
METHODS = ("oi_base", "oi_usd/price", "oi_usd/close")


@dataclass(frozen=True)
class OISeries:
    """Open interest in coins, with how it was obtained.

    Attributes
    ----------
    frame : polars.DataFrame
        ``ts`` (the panel's bars), ``oi_coins`` (null where no fresh OI), ``oi_method`` (per row).
    method : str
        ``"oi_base"``, ``"oi_usd/price"``, ``"oi_usd/close"``, ``"mixed"`` or ``"none"``.
    approximate : bool
        True when any row is USD OI divided by a price.
    price_col : str
        The price column used for the conversion.
    """

    frame: pl.DataFrame
    method: str
    approximate: bool
    price_col: str

    def summary(self) -> str:
        """One line: method, flag and coverage."""
        n = self.frame["oi_coins"].is_not_null().sum()
        flag = " (approximate: USD OI / price)" if self.approximate else ""
        return f"OI in coins via {self.method}{flag}: {n} of {self.frame.height} bars"

    def to_dict(self) -> dict:
        """JSON-ready record of the policy applied (for event and verdict records)."""
        return {"oi_measure": "coins", "oi_method": self.method, "oi_approximate": self.approximate,
                "oi_price_col": self.price_col}


def oi_coins(panel: pl.DataFrame, *, price_col: str = "perp_close",
             max_age_hours: float | None = None) -> OISeries:
    """Open interest in coins per bar of ``panel``, by the module's policy.

    Parameters
    ----------
    panel : polars.DataFrame
        Panel with ``ts`` and ``oi_base`` and/or ``oi_usd`` (``oi_age_hours`` and ``price_col``
        used when present).
    price_col : str
        Close used to turn USD OI into coins.
    max_age_hours : float, optional
        Rows whose OI observation is older than this (``oi_age_hours``) are missing.

    Returns
    -------
    OISeries
        Frame in the panel's row order, the method and the approximation flag.

    Raises
    ------
    EventDetectionError
        The panel has neither ``oi_base`` nor ``oi_usd``, or USD OI without ``price_col``.
    """
    who = "oi_coins"
    if not isinstance(panel, pl.DataFrame) or "ts" not in panel.columns:
        raise EventDetectionError(f"{who}: panel must be a polars DataFrame with a 'ts' column")
    has_base, has_usd = "oi_base" in panel.columns, "oi_usd" in panel.columns
    if not (has_base or has_usd):
        raise EventDetectionError(f"{who}: panel has no column oi_base or oi_usd (columns: {', '.join(panel.columns)})")
    base = pl.col("oi_base").cast(pl.Float64) if has_base else pl.lit(None, pl.Float64)
    df = panel.select("ts", base.alias("_b"),
                      (pl.col("oi_usd").cast(pl.Float64) if has_usd else pl.lit(None, pl.Float64)).alias("_u"),
                      (pl.col("oi_age_hours").cast(pl.Float64) if "oi_age_hours" in panel.columns
                       else pl.lit(None, pl.Float64)).alias("_age"),
                      pl.int_range(pl.len()).alias("_row"))
    usd_rows = df.filter(pl.col("_b").is_null() & pl.col("_u").is_not_null()).height
    if usd_rows and price_col not in panel.columns:
        raise EventDetectionError(f"{who}: {usd_rows} rows have only oi_usd; converting them to coins needs "
                                  f"the price column {price_col!r}, which the panel lacks")
    if usd_rows:
        px = (panel.select(pl.col("ts").alias("_pt"), pl.col(price_col).cast(pl.Float64).alias("_p"))
              .filter(pl.col("_p").is_not_null() & (pl.col("_p") > 0)).sort("_pt"))
        # the close of the last bar that closed at or before the observation: bar q closes at
        # q + bar and the observation is at ts + bar - age, so q <= ts - age
        df = (df.with_columns((pl.col("ts") - pl.duration(seconds=(pl.col("_age") * 3600).round(0).cast(pl.Int64)))
                              .alias("_at"))
              .sort("_at").join_asof(px, left_on="_at", right_on="_pt", strategy="backward")
              .join(px.rename({"_pt": "ts", "_p": "_own"}), on="ts", how="left")
              .sort("_row"))
    else:
        df = df.with_columns(pl.lit(None, pl.Float64).alias("_p"), pl.lit(None, pl.Float64).alias("_own"))
    fresh = pl.lit(True) if max_age_hours is None else (pl.col("_age").is_null() | (pl.col("_age") <= max_age_hours))
    usd_px = pl.when(pl.col("_age").is_not_null()).then(pl.col("_p")).otherwise(pl.col("_own"))
    out = df.select(
        "ts",
        pl.when(fresh).then(pl.coalesce(pl.col("_b"), pl.col("_u") / usd_px)).alias("oi_coins"),
        pl.when(~fresh).then(None)
        .when(pl.col("_b").is_not_null()).then(pl.lit("oi_base"))
        .when(pl.col("_u").is_not_null() & pl.col("_age").is_not_null()).then(pl.lit("oi_usd/price"))
        .when(pl.col("_u").is_not_null()).then(pl.lit("oi_usd/close")).alias("oi_method"))
    out = out.with_columns(pl.when(pl.col("oi_coins").is_null()).then(None).otherwise(pl.col("oi_method"))
                           .alias("oi_method"))
    used = sorted(set(out["oi_method"].drop_nulls().to_list()), key=METHODS.index)
    method = "none" if not used else used[0] if len(used) == 1 else "mixed"
    return OISeries(out, method, any(m != "oi_base" for m in used), price_col)
