"""A seeded synthetic BTC-like market with planted leverage flushes and spot-led exoduses.

The market is driven by a small model of leveraged positioning, stepped once per hour:

* Speculative longs and shorts open at the current price with a mix of leverages; each position
  sits in a *liquidation bucket* on a log-price grid (longs below the price, shorts above).
  Leverage builds in rallies (more, and more highly levered, longs), positions are closed slowly.
* When an hour's low (high) runs through long (short) buckets, those positions are forced out:
  the forced sells (buys) move the price by an impact proportional to their share of open
  interest, which can reach the next layer of buckets - the treadmill - and open interest falls.
* The perp premium follows long/short crowding; funding is the premium averaged over the 8 hours
  before each settlement (00/08/16 UTC), pinned to the 0.0001 interest rate near it, as Binance's
  clamp does.

Two kinds of episode are planted, well separated and in seeded random order:

``flush``
    A rally with heavy leverage build-up (crowding and funding rise), then a fast push through the
    stacked long buckets: a long-liquidation burst that decays, open interest down 5-25 %, funding
    reset from elevated to about neutral, then the price stabilises.
``exodus``
    Spot selling leads: spot share of volume and taker sell imbalance rise, the price falls while
    perp dip buyers keep open interest flat and funding positive, liquidations stay small, and after
    a bounce a second down-leg makes a lower low within days. ETF outflows accompany it.

The ground-truth table is *measured* on the generated series (peak and trough closes, OI snapshots,
funding settlements, liquidation buckets), so it always agrees with the frames. Every row carries
``source = 'synthetic'``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from research import lake, paths
from research.fileio import atomic_path, write_json
from research.schema import SYNTHETIC_SOURCE, validate
from research.simulate._frames import _frames, _truth
from research.simulate._model import (
    F_CALM,
    _in,
    _phases,
    _plant_quiet_rallies,
    _quiet_drivers,
    _run_state_machine,
    _schedule,
)
from research.simulate._params import (
    FG_LABELS,
    INTEREST_RATE,
    SYMBOL,
    TABLE_NAMES,
    TRUTH_DIR,
    TRUTH_FILE,
    TRUTH_SCHEMA,
    VENUE,
    Params,
    SimulationError,
)
from research.simulate._venues import (
    VENUE_TRUTH_SCHEMA,
    VENUES,
    extra_venues,
    venue_truth,
)

#: The default simulated span ends here (fixed, so samples are reproducible and recent).
DEFAULT_END = date(2026, 3, 31)
#: 2024-10-01 .. 2026-03-31 (18 months).
DEFAULT_DAYS = (DEFAULT_END - date(2024, 10, 1)).days + 1
EPISODES_PER_180_DAYS = 4
VENUE_TRUTH_FILE = "synthetic_venue_truth.parquet"


# ------------------------------------------------------------------------------------------------
# Result object
# ------------------------------------------------------------------------------------------------
@dataclass
class SimulatedMarket:
    """The simulated market: one polars frame per canonical table, the planted truth and params."""

    bars: pl.DataFrame
    funding: pl.DataFrame
    open_interest: pl.DataFrame
    liquidations: pl.DataFrame
    liquidation_orders: pl.DataFrame
    positioning: pl.DataFrame
    etf_flows: pl.DataFrame
    sentiment: pl.DataFrame
    truth: pl.DataFrame
    params: dict = field(default_factory=dict)
    #: per planted episode and venue: long liquidations and share over peak .. trough + 6 h
    venue_truth: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=VENUE_TRUTH_SCHEMA))

    def tables(self) -> dict[str, pl.DataFrame]:
        """Canonical table name -> frame."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def to_frame(self) -> pl.DataFrame:
        """The ground-truth table (one row per planted episode)."""
        return self.truth

    def to_dict(self) -> dict:
        """JSON-ready record: params, row counts and the truth table."""
        truth = self.truth.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return {"params": self.params, "rows": {k: v.height for k, v in self.tables().items()},
                "truth": truth.to_dicts()}

    def summary(self) -> str:
        """Plain-text summary of the tables and the planted episodes."""
        lines = [f"Simulated market (seed {self.params.get('seed')}, {self.params.get('start')} + "
                 f"{self.params.get('days')} days, source '{SYNTHETIC_SOURCE}')"]
        lines += [f"  {k:<20} {v.height:>7} rows" for k, v in self.tables().items()]
        lines.append("Planted episodes:")
        for r in self.truth.iter_rows(named=True):
            leg = f", 2nd leg {r['second_leg_ts']:%m-%d %H}h" if r["second_leg"] else ""
            lines.append(
                f"  #{r['episode_id']} {r['kind']:<6} peak {r['peak_ts']:%Y-%m-%d %H}h  "
                f"dd {r['drawdown_pct']:5.1f}%  dOI {r['oi_change_pct']:+6.1f}%  funding "
                f"{r['funding_before']:.5f}->{r['funding_after']:.5f}  long liq "
                f"${r['long_liq_usd'] / 1e6:,.0f}M{leg}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def _parse_start(start) -> datetime:
    if isinstance(start, datetime):
        d = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        d = d.astimezone(timezone.utc)
    elif isinstance(start, date):
        d = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    else:
        try:
            d = datetime.fromisoformat(str(start))
        except ValueError:
            raise SimulationError(f"start={start!r} is not an ISO date; use e.g. '2025-01-01'") from None
        d = d if d.tzinfo else d.replace(tzinfo=timezone.utc)
        d = d.astimezone(timezone.utc)
    if (d.hour, d.minute, d.second, d.microsecond) != (0, 0, 0, 0):
        raise SimulationError(f"start={start!r} must be a UTC midnight (daily series start there)")
    return d


def _params(overrides: dict) -> Params:
    names = {f.name for f in dataclasses.fields(Params)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise SimulationError(f"unknown simulation parameter(s) {bad}; known: {sorted(names)}")
    p = Params(**overrides)
    for name in ("n_flush", "n_exodus"):
        v = getattr(p, name)
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise SimulationError(f"{name}={v!r} must be an integer >= 0")
    for name in ("p0", "oi0_btc", "sigma_h", "vol0_btc", "spot_share", "close_rate", "liq_report"):
        if not getattr(p, name) > 0:
            raise SimulationError(f"{name}={getattr(p, name)!r} must be > 0")
    if not 0 < p.hedged_share < 1:
        raise SimulationError(f"hedged_share={p.hedged_share!r} must be between 0 and 1")
    if p.t_df <= 2:
        raise SimulationError(f"t_df={p.t_df!r} must be > 2 (finite variance)")
    for name in ("flush_drawdown", "flush_oi_drop", "exodus_drawdown"):
        lo_, hi_ = getattr(p, name)
        if not 0 < lo_ <= hi_ < 0.5:
            raise SimulationError(f"{name}={getattr(p, name)!r} must be (low, high) with 0 < low <= high < 0.5")
    return p


def simulate(seed: int = 7, start=None, days: int | None = None, **params) -> SimulatedMarket:
    """Generate the synthetic market.

    Parameters
    ----------
    seed : int
        Seed of the random generator; the same seed gives identical frames.
    start : str, date or datetime, optional
        First hour (a UTC midnight), e.g. ``"2025-01-01"``. Default: the span ends on
        :data:`DEFAULT_END` (2026-03-31), so the README's Oct 2025 - Mar 2026 examples have data.
    days : int, optional
        Length in days (hourly bars: ``24 * days``). Default :data:`DEFAULT_DAYS` (547 days,
        2024-10-01 .. 2026-03-31).
    **params
        Overrides of :class:`Params`, e.g. ``n_flush=5, n_exodus=3``. Unless given, the number of
        episodes of each kind scales with the span: 4 per 180 days (12 each over the default span).

    Returns
    -------
    SimulatedMarket
        One frame per canonical table (all validated, ``source='synthetic'``), ``truth`` and ``params``.

    Raises
    ------
    SimulationError
        Unknown or out-of-range parameter, or more episodes than fit into ``days``.
    """
    days = DEFAULT_DAYS if days is None else days
    if not isinstance(days, (int, np.integer)) or days < 14:
        raise SimulationError(f"days={days!r} must be an integer >= 14")
    for name in ("n_flush", "n_exodus"):
        params.setdefault(name, max(1, round(EPISODES_PER_180_DAYS * int(days) / 180)))
    p = _params(params)
    ts0 = _parse_start(start if start is not None else DEFAULT_END - timedelta(days=int(days) - 1))
    rng = np.random.default_rng(seed)
    n = int(days) * 24
    hod = (np.arange(n) + ts0.hour) % 24
    eps = _schedule(p, n, rng)
    phase, ep_of = _phases(eps, n)
    sig, noise, mu, rally, season = _quiet_drivers(p, n, hod, rng)
    _plant_quiet_rallies(p, phase, mu, rally, rng)
    # calmer after a flush: the market stabilises once the leverage is gone
    calm = _in(phase, F_CALM)
    noise[calm] *= 0.6
    st = _run_state_machine(p, eps, phase, ep_of, sig, noise, mu, rally, rng)
    frames = _frames(p, eps, phase, st, sig, season, ts0, rng)
    frames = {name: validate(name, df) for name, df in frames.items()}
    truth = _truth(eps, st, frames, ts0)
    # the other venues come from their own stream, so Binance's rows do not depend on them
    venue_rng = np.random.default_rng([int(seed), 1])
    frames = extra_venues(frames, ep_of, len(eps), venue_rng)
    frames = {name: validate(name, frames[name]) for name in ("liquidations", "open_interest")} | {
        k: v for k, v in frames.items() if k not in ("liquidations", "open_interest")}
    record = {"seed": int(seed), "start": ts0.strftime("%Y-%m-%d"), "days": int(days),
              **{k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(p).items()}}
    return SimulatedMarket(**frames, truth=truth, params=record,
                           venue_truth=venue_truth(truth, frames["liquidations"]))


def truth_path(data_dir=None) -> Path:
    """Where :func:`write_sample` stores the ground truth: ``<data_dir>/lake/_truth/synthetic_truth.parquet``."""
    return paths.lake_dir(data_dir) / TRUTH_DIR / TRUTH_FILE


def write_sample(data_dir=None, seed: int = 7, days: int | None = None, replace: bool = True, **params) -> SimulatedMarket:
    """Simulate and write every table into the lake (``source='synthetic'``) plus the truth table.

    Parameters
    ----------
    data_dir : path, optional
        Data directory (default: ``RESEARCH_DATA_DIR`` or ``./data``).
    seed, days, **params
        Passed to :func:`simulate` (``start``, ``n_flush``, ...).
    replace : bool
        Delete the existing synthetic partitions first, so an older sample with another seed or
        span leaves no rows behind. Real-data partitions are never touched.
    """
    market = simulate(seed=seed, days=days, **params)
    if replace:
        for name in TABLE_NAMES:
            lake.delete(name, data_dir, source=SYNTHETIC_SOURCE)
    for name, df in market.tables().items():
        lake.write(name, df, data_dir, origin=f"research.simulate(seed={seed})")
    target = truth_path(data_dir)
    with atomic_path(target) as tmp:
        market.truth.write_parquet(tmp)
    with atomic_path(target.with_name(VENUE_TRUTH_FILE)) as tmp:
        market.venue_truth.write_parquet(tmp)
    # the params travel beside the truth so a reader knows which sample it describes
    write_json(target.with_suffix(".json"), market.params)
    return market


def read_truth(data_dir=None) -> pl.DataFrame:
    """The ground truth written by :func:`write_sample`.

    Raises
    ------
    FileNotFoundError
        When no sample was written; run ``research sample`` (or :func:`write_sample`) first.
    """
    path = truth_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no synthetic sample in this data directory; "
                                "run `research sample` first")
    return pl.read_parquet(path).cast(TRUTH_SCHEMA)


def read_venue_truth(data_dir=None) -> pl.DataFrame:
    """Per planted episode and venue: long liquidations and share (written by :func:`write_sample`)."""
    path = truth_path(data_dir).with_name(VENUE_TRUTH_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no synthetic sample in this data directory; "
                                "run `research sample` first")
    return pl.read_parquet(path).cast(VENUE_TRUTH_SCHEMA)
