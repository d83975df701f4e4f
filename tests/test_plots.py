"""Plot functions of the events notebooks: valid Vega-Lite specs, non-empty exports, row caps."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from research import plots

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def market():
    n = 200
    ts = pl.datetime_range(T0, T0 + dt.timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC")
    liq = [float(i % 7) if i % 4 == 3 else None for i in range(n)]
    return pl.DataFrame({"ts": ts, "price": np.linspace(90e3, 80e3, n), "oi_bn": np.linspace(80, 70, n),
                         "funding_8h_bp": np.sin(np.arange(n) / 10), "liq_long_musd": liq, "liq_short_musd": liq,
                         "oi_unit": ["USD bn"] * n})


@pytest.fixture
def profiles():
    et = np.arange(-5, 6)
    rows = []
    for c in ("cum_ret_pct", "funding_8h_bp"):
        rows.append(pl.DataFrame({"event_time": et, "column": [c] * et.size, "mean": et * 0.1, "median": et * 0.1,
                                  "lo": et * 0.1 - 1, "hi": et * 0.1 + 1, "n": [5] * et.size}))
    return pl.concat(rows)


def test_market_panel_spec_and_export(market, tmp_path):
    events = pl.DataFrame({"ts": [T0 + dt.timedelta(hours=50)], "kind": ["oi_collapse"]})
    chart = plots.plot_market_panel(market, events, title="t", synthetic=True)
    spec = chart.to_dict()      # validates against the Vega-Lite schema
    assert len(spec["vconcat"]) == 4 and plots.SYNTHETIC_NOTE in spec["title"]
    files = plots.export(chart, tmp_path / "panel")
    assert [f.suffix for f in files] == [".png", ".svg", ".pdf"] and all(f.stat().st_size > 1000 for f in files)


def test_market_panel_partial_columns_and_caps(market):
    chart = plots.plot_market_panel(market.select("ts", "price", "funding_8h_bp"))
    assert len(chart.to_dict()["vconcat"]) == 2
    big = pl.DataFrame({"ts": pl.datetime_range(T0, T0 + dt.timedelta(hours=plots.MAX_PANEL_ROWS), "1h", eager=True,
                                                time_zone="UTC")}).with_columns(pl.lit(1.0).alias("price"))
    with pytest.raises(ValueError, match="aggregate first"):
        plots.plot_market_panel(big)
    with pytest.raises(ValueError, match="none of"):
        plots.plot_market_panel(market.select("ts"))


def test_event_profiles_spec_and_export(profiles, tmp_path):
    chart = plots.plot_event_profiles(profiles, synthetic=True)
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 1 and len(spec["vconcat"][0]["hconcat"]) == 2   # two panels, one row
    files = plots.export(chart, tmp_path / "prof", formats=("png", "svg"))
    assert all(f.stat().st_size > 1000 for f in files)
    with pytest.raises(ValueError, match="lacks"):
        plots.plot_event_profiles(profiles.drop("lo"))
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_event_profiles(profiles.head(0))


def test_market_panel_frame_downsamples():
    from research.hypotheses import frames

    n = 4000
    ts = pl.datetime_range(T0, T0 + dt.timedelta(hours=n - 1), "1h", eager=True, time_zone="UTC")
    panel = pl.DataFrame({"ts": ts, "perp_close": np.arange(n, dtype=float), "oi_base": np.full(n, 1e5),
                          "oi_usd": np.full(n, 8e9), "funding_rate_8h": np.full(n, 1e-4),
                          "liq_long_usd": [1e6 if i % 4 == 3 else None for i in range(n)],
                          "liq_short_usd": [None] * n})
    f = frames.market_panel_frame(panel, max_rows=1000)
    assert f.height <= 1000
    assert f["liq_long_musd"].sum() == pytest.approx(1000.0)   # liquidations are summed, not dropped
    assert f["price"].max() == pytest.approx(n - 1)
    assert f["oi_unit"][0] == "k coins"


def test_a_chart_changed_in_place_is_exported_and_displayed_as_it_now_is(profiles, tmp_path):
    import json

    from research.plots import base

    chart = plots.plot_event_profiles(profiles, synthetic=True)
    first = base.spec_of(chart)
    assert base.spec_of(chart) is first                       # unchanged: validated once
    chart.title = "a title set in place"                      # a top-level change
    assert base.spec_of(chart)["title"] == "a title set in place"
    inner = chart.vconcat[0].hconcat[0]
    inner.height = 123                                        # a nested change
    plots.export(chart, tmp_path / "fig", formats=("json",))
    saved = json.loads((tmp_path / "fig.vl.json").read_text())
    assert saved["vconcat"][0]["hconcat"][0]["height"] == 123
    assert base.display_bundle(chart)["application/vnd.vegalite.v5+json"] == saved
    import altair as alt

    alt.theme.enable("default")                               # the theme's config is part of the spec
    try:
        assert "config" not in base.spec_of(chart) or base.spec_of(chart)["config"] != saved.get("config")
    finally:
        alt.theme.enable(base.THEME)
    assert base.spec_of(chart) == saved
    chart.title = 5                                           # still validated: a bad change is refused
    with pytest.raises(Exception, match="title"):
        base.spec_of(chart)
