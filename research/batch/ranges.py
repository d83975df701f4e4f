"""The allowed ranges of notebook parameters, declared once, checked before any cell runs.

A notebook's ``parameters`` cell gives each name a default and so a type
(:mod:`research.batch.parameters`); this table adds what a type cannot say: a drawdown is a positive
percentage below 100, a permutation count is at least 1, an hour of the day lies in 0..23. Names
shared by several notebooks mean the same thing in each, so one entry covers all of them. ``None``
always passes (it means "not used" wherever a default is None); a list is checked element by element.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Range", "RANGES", "range_error"]


@dataclass(frozen=True)
class Range:
    """``lo < x < hi`` (open ends) or ``lo <= x <= hi`` (closed); None is unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    what: str = ""  # what the value is, for the message

    def contains(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return False
        return True

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return (f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_PCT = Range(0, 100, lo_open=True, hi_open=True, what="a percentage")
_POS = Range(0, lo_open=True, what="a positive number")
_NONNEG = Range(0, what="a non-negative number")
_COUNT = Range(1, what="a count")
_HOURS = Range(1, what="a number of hours")
_NONNEG_HOURS = Range(0, what="a number of hours")
_PROB = Range(0, 1, lo_open=True, hi_open=True, what="a probability")
_SHARE = Range(0, 1, what="a share")

#: parameter name -> allowed range (every notebook that defines the name)
RANGES: dict[str, Range] = {
    # sell-offs, collapses, bounces: a move of this % (0 < x < 100)
    **dict.fromkeys(("drawdown_pct", "selloff_drawdown_pct", "drop_pct", "rebound_pct", "bounce_pct"), _PCT),
    **dict.fromkeys(("oi_hold_pct", "bin_pct", "max_distance_pct", "min_distance_pct", "pct", "elevated_pct"), _PCT),
    # thresholds and multiples
    **dict.fromkeys(("k", "print_k", "cascade_k", "elevated_k", "liq_center_x", "liq_band_x", "ls_threshold",
                     "horizon_days", "half_life_hours"), _POS),
    **dict.fromkeys(("elevated", "neutral", "neutral_bps", "neutral_funding", "funding_reset_bps", "oi_band_pct",
                     "spot_share_band", "taker_band", "etf_band_usd", "min_usd", "margin", "funding_factors"), _NONNEG),
    # counts
    **dict.fromkeys(("n_perm", "n_rotations", "n_perm_placebo", "n_regimes", "lags", "k_bars",
                     "block_days", "max_cells", "min_criteria", "within_settlements"), _COUNT),
    # placebo draws measuring a primary test's size: 0 skips the measurement (the notebooks say so)
    **dict.fromkeys(("n_draws", "n_placebo"), Range(0, what="a number of placebo draws (0 skips)")),
    "hac_lags": Range(0, what="a number of lags"),
    "harmonics": Range(0, what="a number of harmonic pairs"),
    # hour spans
    **dict.fromkeys(("window_hours", "cascade_window_hours", "baseline_hours", "pre_hours", "funding_lookback_hours",
                     "bounce_hours", "horizon_hours", "primary_horizon", "horizons", "liq_profile_hours", "rv_hours",
                     "max_oi_age_hours", "every_hours", "within_hours", "selloff_within_hours"), _HOURS),
    **dict.fromkeys(("min_spacing_hours", "selloff_min_spacing_hours", "cascade_spacing_hours", "post_hours",
                     "warmup_hours", "match_tolerance_hours", "window"), _NONNEG_HOURS),
    "settlement_hours": Range(0, 23, what="an hour of the day (UTC)"),
    # probabilities and shares
    **dict.fromkeys(("print_quantile",), _PROB),
    **dict.fromkeys(("long_share",), _SHARE),
}


def range_error(name: str, value: Any) -> str | None:
    """Why ``value`` is out of range for ``name`` (one line), or None when it is fine or unconstrained."""
    rng = RANGES.get(name)
    if rng is None or value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            continue  # the type check names wrong types
        if x != x or not rng.contains(x):  # NaN is never in range
            where = f" (element {x!r})" if isinstance(value, (list, tuple)) else ""
            return f"parameter {name!r} = {value!r}{where} is out of range: {rng.what} {rng}"
    return None
