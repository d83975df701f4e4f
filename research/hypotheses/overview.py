"""Notebook 00: what the lake holds (coverage, gaps, series chosen) and the perp share of volume."""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from research.panel import panel_gaps
from research.results import Results
from research.stats import fmt

from .frames import events_for_plot, market_panel_frame

__all__ = ["OverviewResult", "data_overview", "perp_share"]


def perp_share(panel: pl.DataFrame) -> tuple[float | None, pl.DataFrame]:
    """``(share, daily)``: the perp share of perp + spot volume (base units) overall and per UTC day."""
    vol = panel.filter(pl.col("perp_volume").is_not_null() & pl.col("spot_volume").is_not_null())
    share = float(vol["perp_volume"].sum() / (vol["perp_volume"].sum() + vol["spot_volume"].sum())) if vol.height else None
    daily = (vol.group_by_dynamic("ts", every="1d")
             .agg((pl.col("perp_volume").sum() / (pl.col("perp_volume").sum() + pl.col("spot_volume").sum()))
                  .alias("perp_share")))
    return share, daily


@dataclass
class OverviewResult(Results):
    """Coverage of the lake and the panel, the sell-offs marked on the market panel, the perp share."""

    lake_coverage: pl.DataFrame
    panel_gaps: pl.DataFrame
    daily_perp_share: pl.DataFrame
    selloffs: pl.DataFrame
    coverage: dict
    perp_share: float | None
    symbol: str = ""
    synthetic: bool = False
    notes: list = field(default_factory=list)
    panel_frame: pl.DataFrame | None = None

    key = "data_overview"

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"lake_coverage": self.lake_coverage, "panel_gaps": self.panel_gaps,
                "daily_perp_share": self.daily_perp_share, "selloffs": self.selloffs,
                "panel_coverage": pl.DataFrame([{k: str(v) for k, v in self.coverage.items()}])}

    def to_frame(self) -> pl.DataFrame:
        return self.lake_coverage

    def summary(self) -> str:
        c = self.coverage
        return "\n".join([f"Data overview: {self.symbol} {c.get('start')} .. {c.get('end')} ({c.get('hours')} h)",
                          f"series: {c.get('inputs')}",
                          f"panel gaps (no perp bar): {self.panel_gaps.height}; sell-offs: {self.selloffs.height}",
                          f"perp share of volume: {self.perp_share}"])

    def verdicts(self) -> list:
        from research.records import Verdict

        d = self.daily_perp_share["perp_share"]
        return [Verdict(
            hypothesis="Perps carry most BTC volume (article: ~68 % across venues in 2025, Kaiko)",
            effect=self.perp_share, n_events=self.daily_perp_share.height,
            test=f"descriptive (no test); daily shares range {fmt(d.quantile(0.05), '.2f')}-{fmt(d.quantile(0.95), '.2f')} "
                 "(5-95 %)",
            effect_label="perp share of Binance BTCUSDT perp+spot volume",
            conclusion=("not comparable to Kaiko's cross-venue figure; one venue only" if self.perp_share is not None
                        else "no volume data"))]

    def plot(self):
        from research import plots

        return plots.plot_market_panel(self.panel_frame, events_for_plot(self.selloffs),
                                       title=f"{self.symbol}: price, OI, funding, long liquidations; sell-offs marked",
                                       synthetic=self.synthetic)

    def figures(self) -> dict:
        return {"market_panel": self.plot()}


def data_overview(inputs, *, selloff_drawdown_pct: float = 5.0, selloff_within_hours: float | None = None,
                  selloff_min_spacing_hours: float | None = 72, selloff_rebound_pct: float = 3.0) -> OverviewResult:
    """Notebook 00 on ``inputs`` (:class:`research.panel.Inputs`, loaded with ``lake_coverage=True``)."""
    from research.coverage import coverage as lake_coverage
    from research.events import detect_selloffs

    panel = inputs.panel
    share, daily = perp_share(panel)
    selloffs = detect_selloffs(panel, drawdown_pct=selloff_drawdown_pct, rebound_pct=selloff_rebound_pct,
                               within_hours=selloff_within_hours, min_spacing_hours=selloff_min_spacing_hours)
    lake = inputs.lake_coverage if inputs.lake_coverage is not None else lake_coverage(inputs.data_dir)
    cov = {k: v for k, v in inputs.coverage.items() if not k.startswith("has_")}
    return OverviewResult(lake_coverage=lake, panel_gaps=panel_gaps(panel, "has_perp"), daily_perp_share=daily,
                          selloffs=selloffs, coverage=cov, perp_share=share,
                          symbol=str(panel["symbol"][0]) if "symbol" in panel.columns else "",
                          synthetic=inputs.synthetic, panel_frame=market_panel_frame(panel))
