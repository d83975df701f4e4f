"""Which venues flushed: venue shares of liquidations and OI around each selloff (notebook 26).

The articles' multi-venue claim ("Bybit and Hyperliquid together accounted for more than half" of
the Nov 2025 liquidations). This is a description, not a test: the record holds the shares per
selloff and one descriptive row. A lake with fewer than two venues makes it "not testable".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from research.records import Verdict
from research.results import Results
from research.stats import NotTestable

__all__ = ["VenueShareStudy", "venue_study"]


@dataclass
class VenueShareStudy(Results):
    """The venue-share analysis of one lake and span, or why it could not run.

    Attributes
    ----------
    shares : research.venues.VenueShares or None
        The shares (None when not testable).
    reason : str or None
        Why there are no shares (fewer than two venues, no selloffs).
    params : dict
    """

    shares: object | None
    reason: str | None = None
    params: dict = field(default_factory=dict)
    key = "venue_shares"
    main_figure = "liquidation_shares"

    @property
    def notes(self) -> list[str]:
        return [str(NotTestable(self.reason))] if self.reason else []

    def summary(self) -> str:
        return self.shares.summary() if self.shares is not None else f"Venue shares: {NotTestable(self.reason)}"

    def to_frame(self) -> pl.DataFrame:
        return self.shares.to_frame() if self.shares is not None else pl.DataFrame()

    def tables(self) -> dict[str, pl.DataFrame]:
        if self.shares is None:
            return {}
        s = self.shares
        return {"selloffs": s.selloffs, "venue_shares": s.to_frame(), "top_venues": s.top_venues(2),
                "inputs": s.inputs}

    def plot(self, measure: str = "liquidations"):
        return self.shares.plot(measure) if self.shares is not None else None

    def figures(self) -> dict:
        if self.shares is None:
            return {}
        return {"liquidation_shares": self.shares.plot("liquidations"), "oi_drop_shares": self.shares.plot("oi_drop")}

    def verdicts(self) -> list[Verdict]:
        label = "Top two venues' share of long liquidations (median selloff)"
        if self.shares is None:
            return [Verdict(label, None, test="descriptive", conclusion=str(NotTestable(self.reason)))]
        top = self.shares.top_venues(2)["top_share"].drop_nulls()
        med = float(top.median()) if top.len() else None
        return [Verdict(label, med, n_events=self.shares.selloffs.height, test="descriptive (no test)",
                        effect_label="share of all venues' long liquidations",
                        conclusion="descriptive: shares per selloff in the table" if med is not None
                        else str(NotTestable("no liquidations in the selloff windows")))]


def venue_study(inputs, *, coin: str = "BTC", drawdown_pct: float = 6.0, post_hours: int = 6) -> VenueShareStudy:
    """Run :func:`research.venues.venue_shares` on the lake ``inputs`` read.

    Parameters
    ----------
    inputs : research.panel.Inputs
        Gives the data directory (the simulated market's temporary lake for an empty lake).
        Its panel's symbol and span are the price series and span the selloffs are found in.
    coin, drawdown_pct, post_hours
        As in :func:`research.venues.venue_shares`.
    """
    from research import venues

    cov = inputs.coverage
    symbol, start, end = cov.get("symbol", "BTCUSDT"), cov.get("start"), cov.get("end")

    params = {"coin": coin, "symbol": symbol, "start": start, "end": end, "drawdown_pct": drawdown_pct,
              "post_hours": post_hours}
    try:
        shares = venues.venue_shares(inputs.data_dir, coin=coin, price_symbol=symbol, start=start, end=end,
                                     drawdown_pct=drawdown_pct, post_hours=post_hours)
    except venues.VenueShareError as exc:
        return VenueShareStudy(None, reason=str(exc), params=params)
    return VenueShareStudy(shares, params=params)
