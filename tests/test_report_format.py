"""The report's wording of verdicts: units, one number format, window labels, conclusions, N units."""
from __future__ import annotations

import pytest

from research.records import Verdict
from research.report import format as F


@pytest.mark.parametrize("label, hypothesis, value, shown, unit", [
    ("CAAR of perp log returns", "CAR(+1h,+24h) after funding resets != 0", -0.03411294, "−3.41 %", "%"),
    ("mean CAR flush - exodus (log return)", "", 0.0166741, "1.67 %", "%"),
    ("mean in window - mean outside", "|hourly log return| differs", -6.58378713e-05, "−0.658 bp", "bp"),
    ("P(cascade | signal) - P(cascade | no signal)", "", 0.0295231, "2.95 pp", "percentage points"),
    ("P(second leg)", "", 0.6935484, "69.4 %", "%"),
    ("odds ratio (second leg | condition vs not)", "", 4.0444444, "4.04×", "ratio"),
    ("perp share of Binance BTCUSDT perp+spot volume", "", 0.8859349, "88.6 %", "%"),
    ("perp minus spot log volume, settlement window - other hours", "", 0.0015649, "0.157 %", "% (from a log difference)"),
    ("lag-1 autocorrelation of the print indicator", "", 0.1891842, "0.189", ""),
    ("ETF net flow, USD per day", "", -1.5e8, "−$150 M", "USD"),
])
def test_effects_in_the_units_a_researcher_reads(label, hypothesis, value, shown, unit):
    u = F.effect_unit(label, hypothesis)
    assert (F.fmt_value(value, u), u.name) == (shown, unit)
    assert "e" not in F.fmt_value(value, u).replace("−", "")  # never scientific notation


def test_raw_value_and_missing_values():
    assert F.fmt_raw(9.145e-05) == "9.145e-05" and F.fmt_raw(None) == "none"
    assert F.fmt_value(None, F.effect_unit("P(x)")) == "–" and F.fmt_value(float("nan"), F.Unit("")) == "–"
    assert F.fmt_value(12345, F.Unit("")) == "12,345"


@pytest.mark.parametrize("text, expected", [
    ("CAR(-24h,-1h) after funding resets != 0", "CAR(-24h,-1h) before funding resets != 0"),
    ("CAR(+1h,+72h) after OI collapses != 0", "CAR(+1h,+72h) after OI collapses != 0"),
    ("CAR(0,+24h) after long-liquidation prints != 0", "CAR(0,+24h) at and after long-liquidation prints != 0"),
    ("CAR(-6h,+6h) after sell-offs != 0", "CAR(-6h,+6h) around sell-offs != 0"),
    ("no window here", "no window here"),
])
def test_window_labels_say_before_or_after(text, expected):
    assert F.window_label(text) == expected


def test_every_row_has_a_conclusion():
    assert F.conclusion(Verdict("h", 0.69)) == "descriptive only (no test)"
    assert F.conclusion(Verdict("h", None)) == "not testable (no estimate)"
    assert F.conclusion(Verdict("h", 0.1, pvalue=0.01)) == "reject the null at 0.05"
    assert F.conclusion(Verdict("h", 0.1, pvalue=0.01, conclusion="as stated")) == "as stated"


def test_n_says_what_it_counts():
    v = Verdict("h", 0.1, n_events=19)
    assert F.n_unit("10-funding-resets", v, "funding resets") == "funding resets"
    assert F.n_unit("22-crowding-early-warning", v) == "cascades"
    assert F.n_unit("23-funding-settlement-hours", Verdict("beyond spot", 0.1, test="day fixed effects")) == "days"
    assert F.n_unit("23-funding-settlement-hours", Verdict("(secondary, no spot control) |hourly log return|", 0.1)) == "hours"
    assert F.n_unit("99-unknown", v) == "events"


def test_primary_table_states_size_band_and_power_or_why_not():
    from types import SimpleNamespace

    from research.report.render import _primary_html

    def entry(stem, verdicts):
        return SimpleNamespace(stem=stem, record=SimpleNamespace(verdicts=verdicts))

    car = Verdict("CAR(+1h,+24h) after long-liquidation prints != 0", 0.004, -0.01, 0.02, pvalue=0.4, primary=True,
                  test="cross_sectional_t (placebo-calibrated) (engine, mean model); more", size=0.045, n_placebo=200,
                  mde=0.0157, mde_label="CAAR (log return) detected in 80 % of placebo studies")
    h2 = Verdict("oi_held and funding_positive raises the probability of a second leg", 1.2, 0.1, 9.0, pvalue=1.0,
                 primary=True, test="Fisher exact test (two-sided, minlike) on the 2x2 table; x", size=0.0427,
                 mde_label="no rise of P(second leg) up to certainty has 80 % power with these events")
    h1 = Verdict("Forward return 72 h after the decision bar differs", None, primary=True,
                 test="permutation of class labels", conclusion="not testable: n = 1 flush vs 14 exodus")
    secondary = Verdict("CAR(+1h,+72h) after prints != 0", 0.01, pvalue=0.2)
    html = _primary_html([entry("12-liquidation-prints", [car, secondary]), entry("21-second-leg", [h2]),
                          entry("20-flush-vs-exodus", [h1])])
    assert "Primary tests: calibration and power" in html
    assert "4.5% on 200 placebo draws (inside 3.5%–7.5%)" in html and "1.57 %" in html   # CAAR MDE in %
    assert "4.3% exact, at this design (inside" in html and "no rise of P(second leg)" in html
    assert html.count("not testable: n = 1 flush vs 14 exodus") == 2            # size and MDE cells say why
    assert "+72h" not in html                                                   # only primary rows
    assert _primary_html([entry("00-data-overview", [secondary])]) == ""
