"""The test catalogue: names, the assumptions each needs, the defaults, their distributions."""
from __future__ import annotations

PARAMETRIC = ("brown_warner_1980", "brown_warner_1985", "cross_sectional_t", "patell", "bmp", "bmp_kp", "lamb",
              "calendar_hac", "design_hc")
NONPARAMETRIC = ("sign", "generalized_sign", "corrado_sign", "corrado_rank", "modified_rank", "wilcoxon")
#: Every test and the assumptions it needs (beyond "no event effect" under the null). The sizes
#: measured for one asset with clustered events are in :mod:`research.eventstudy.sizes`.
TESTS = {
    "brown_warner_1980": "normal ARs, no event-induced variance, independent events (time-series s_i)",
    "brown_warner_1985": "normal ARs, no event-induced variance; portfolio s.d. absorbs cross-event correlation",
    "cross_sectional_t": "independent events (non-overlapping windows), finite variance; robust to event-induced variance",
    "patell": "normal ARs, no event-induced variance, independent events",
    "bmp": "independent events, finite variance; robust to event-induced variance (Boehmer et al. 1991)",
    "bmp_kp": "BMP with the Kolari-Pynnonen correction for cross-event correlation, incl. shared bars of overlapping windows",
    "lamb": "normal ARs, no event-induced variance (estimation-window portfolio s.d.)",
    "calendar_hac": "stationary calendar-time portfolio ARs; Newey-West over T lags; allows overlapping windows",
    "design_hc": "residuals uncorrelated over time, any variance path; exact design weights (overlaps, contaminated "
                 "estimation windows, event-induced variance); see research.eventstudy.robust",
    "sign": "independent events, median AR 0 under the null (symmetric ARs)",
    "generalized_sign": "independent events, P(AR > 0) under the null equals its estimation-window share",
    "corrado_sign": "AR distribution unchanged by the event (no event-induced variance), independent events",
    "corrado_rank": "AR distribution unchanged by the event (no event-induced variance), independent events",
    "modified_rank": "AR distribution unchanged by the event (no event-induced variance), independent events",
    "wilcoxon": "independent events, ARs symmetric about 0 under the null; exact two-sided p",
}
#: Tests run when ``tests=None``: the set whose size stayed within 3.5-7.5 % for AR and CAR in the
#: single-asset simulation (clustered events, t(4) stochastic-volatility returns, event-induced variance); see
#: :mod:`research.eventstudy.sizes`. The others run on request (``tests="all"`` or by name).
DEFAULT_TESTS = ("design_hc",)
#: Defaults without an estimation window (``model="raw"``): nothing was measured to hold there.
DEFAULT_NO_ESTIMATION = ("cross_sectional_t", "wilcoxon")
#: Tests that only look at the event window (usable without an estimation window).
NO_ESTIMATION = ("cross_sectional_t", "sign", "wilcoxon", "calendar_hac")
#: Tests whose per-bar statistics the CAR versions sum (see :mod:`.cartests`).
BAR_AGGREGATED = ("brown_warner_1980", "brown_warner_1985", "lamb", "corrado_sign", "corrado_rank", "modified_rank")

DIST = {
    "brown_warner_1980": "t", "brown_warner_1985": "t", "cross_sectional_t": "t", "patell": "normal",
    "bmp": "t", "bmp_kp": "t", "lamb": "normal", "sign": "normal", "generalized_sign": "normal",
    "corrado_sign": "normal", "corrado_rank": "normal", "modified_rank": "normal", "wilcoxon": "signed-rank",
    "calendar_hac": "normal",
    "design_hc": "normal",
}
