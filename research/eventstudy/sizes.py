"""Size and power of the engine's tests for Treadmill's design, by simulation.

The design: one hourly series, r = 0.8 m + e with t(4) stochastic-volatility residuals and market, events
in clusters (2-4 events 24-72 bars apart, clusters far apart), the project's windows
(estimation (-240, -25), event (-24, +72), market model), event-induced variance (residual
variance x3 over bars 0..+72 of every event) and, for power, an abnormal return of ``effect``
residual s.d. planted at bar 0. Replications are stacked as separate assets of one panel, so one
:func:`~research.eventstudy.run` call anchors, thins and fits them all; the tests then run per
replication on its rows of the fit (no Python loop over events or bars).

Reproduce the table in the package docs::

    python -m research.eventstudy.sizes --reps 400 --events 200

Measured with ``--reps 400`` (seed 0; 5 % level; the Monte-Carlo 95 % band at 400 draws is
2.9-7.1 %; ``tests/eventstudy/test_sizes.py`` checks the defaults with 1,000 draws). ``thin`` is
the default (no two CAR windows share a bar); ``keep`` keeps every clustered event. Columns: rejection rate at bar 0 (AR), of CAR(0,+4) and CAR(-24,+72) with no
effect (size), and power at bar 0 / CAR(0,+4) with a bar-0 effect of 0.5 and 1 residual s.d.

::

    overlap test                size AR  CAR0,4 CAR-24,72 pw.5 AR  pw.5 C  pw1 AR   pw1 C  events
    thin    patell                 29.2    28.2      15.2    96.0    58.8   100.0    95.0     100
    thin    cross_sectional_t       4.0     6.0       2.5    82.5    23.8    99.8    69.2     100
    thin    bmp                     4.5     5.5       3.5    83.5    26.5    99.8    69.8     100
    thin    bmp_kp                  4.0     5.8       3.0    84.0    26.2    99.8    70.0     100
    thin    corrado_rank            7.8     9.0       3.8    99.5    52.0   100.0    94.0     100
    thin    wilcoxon                4.0     5.5       2.8    97.2    37.8   100.0    88.8     100
    thin    design_hc               4.0     5.2       5.0    82.5    24.8    99.8    69.2     100
    keep    patell                 23.2    23.0      29.8     nan     nan     nan     nan     200
    keep    cross_sectional_t       3.8     2.2      10.5     nan     nan     nan     nan     200
    keep    bmp                     5.0     3.0       9.5     nan     nan     nan     nan     200
    keep    bmp_kp                  5.2     2.8       3.0     nan     nan     nan     nan     200
    keep    corrado_rank            7.5     5.5      12.5     nan     nan     nan     nan     200
    keep    wilcoxon                3.5     4.2       7.8     nan     nan     nan     nan     200
    keep    design_hc               4.0     2.8       5.0     nan     nan     nan     nan     200

Power: "pw.5"/"pw1" = planted 0.5 / 1 residual s.d. at bar 0, for AR(0) and CAR(0,+4) ("C").
Only ``design_hc`` stays inside 3.5-7.5 % for AR and both CARs under ``thin`` (the default), and
it is the default test; 1,000 replications (the slow test) give it 4.9 / 4.4 / 5.8 %. The rank
and normal-theory tests over-reject under event-induced variance; the cross-sectional t, BMP and
Wilcoxon under-reject the long CAR, whose estimation windows contain earlier events' windows.
"""
from __future__ import annotations

import argparse
import datetime as dt
import warnings

import numpy as np
import polars as pl

from . import windows as W
from .statistics import TestBattery

EST, WIN = (-240, -25), (-24, 72)
CARS = {"car_0_4": (0, 4), "car_full": WIN}


def _sv_t(rng, n_reps: int, n_bars: int, df: float = 4.0, phi: float = 0.98, vol_of_vol: float = 0.2) -> np.ndarray:
    """``(n_reps, n_bars)`` stochastic-volatility paths with t(df) shocks, unit variance on average.

    log h_t = phi log h_{t-1} + eta_t (volatility clusters, half-life ~35 bars), times standardised
    t(df) shocks: fat tails and volatility regimes like hourly crypto returns. ``lfilter`` runs the
    AR(1) along the bars for every replication at once.
    """
    from scipy.signal import lfilter

    eta = rng.normal(0, vol_of_vol, size=(n_reps, n_bars))
    logh = lfilter([1.0], [1.0, -phi], eta, axis=1)
    h = np.exp(logh - 0.5 * vol_of_vol**2 / (1 - phi**2))  # E[exp(logh)] = 1: unit variance
    z = rng.standard_t(df, size=(n_reps, n_bars)) / np.sqrt(df / (df - 2))
    return np.sqrt(h) * z


def _clustered_bars(rng, n_events: int, n_bars: int) -> np.ndarray:
    """Event bars in clusters of 2-4 events 24-72 bars apart, clusters spread over the series."""
    sizes = []
    while sum(sizes) < n_events:
        sizes.append(int(rng.integers(2, 5)))
    sizes[-1] -= sum(sizes) - n_events
    sizes = [s for s in sizes if s > 0]
    lo, hi = -EST[0] + 5, n_bars - WIN[1] - 300
    starts = np.sort(rng.choice(np.arange(lo, hi, 400), size=len(sizes), replace=False))
    bars = []
    for s0, k in zip(starts, sizes):
        bars.extend(s0 + np.concatenate([[0], np.cumsum(rng.integers(24, 73, k - 1))]))
    return np.asarray(bars[:n_events], dtype=np.int64)


def simulate(n_reps: int = 1000, *, n_events: int = 500, effect: float = 0.0, eiv: float = 3.0,
             tests=("cross_sectional_t", "bmp", "wilcoxon"), event_overlap: str = "thin",
             seed: int = 0, chunk: int = 100, level: float = 0.05) -> dict:
    """Rejection rates at ``level`` of ``tests`` on simulated single-asset studies.

    Parameters
    ----------
    n_reps : int
        Replications (one series and one clustered event set each).
    n_events : int
        Events per replication before the overlap policy.
    effect : float
        Abnormal return planted at bar 0, in residual standard deviations (0 = size).
    eiv : float
        Residual variance multiplier over bars 0..+72 of every event (event-induced variance).
    tests : sequence of str
        Tests to score.
    event_overlap : str
        Passed to :func:`research.eventstudy.run`.
    seed : int
        Seed of ``numpy.random.default_rng``.
    chunk : int
        Replications per stacked panel (memory bound).
    level : float
        Nominal level.

    Returns
    -------
    dict
        ``{test: {"ar": rate, "car_0_4": rate, "car_full": rate}}`` plus ``"n_used"``, the mean
        number of events per replication after the overlap policy.
    """
    from . import run  # local import: the package imports this module for its docs

    rng = np.random.default_rng(seed)
    n_bars = int(max(4000, (n_events // 2 + 2) * 400 + 600))
    hits = {t: {"ar": 0, **{k: 0 for k in CARS}} for t in tests}
    used = []
    t0 = dt.datetime(2020, 1, 1)
    ts = pl.datetime_range(t0, t0 + dt.timedelta(hours=n_bars - 1), interval="1h", eager=True)
    j0 = -WIN[0]
    origin, bar = int(ts.to_physical()[0]), int(ts.to_physical()[1] - ts.to_physical()[0])
    for c0 in range(0, n_reps, chunk):
        c = min(chunk, n_reps - c0)
        m = 0.01 * _sv_t(rng, 1, n_bars)[0]  # one market path per chunk, shared as in reality
        mframe = pl.DataFrame({"ts": ts, "return": m})
        e = 0.01 * _sv_t(rng, c, n_bars)
        bars = np.stack([_clustered_bars(rng, n_events, n_bars) for _ in range(c)])
        rows = np.repeat(np.arange(c), n_events)
        mult = np.ones((c, n_bars))
        cover = np.zeros((c, n_bars + 1))
        np.add.at(cover, (rows, bars.ravel()), 1)
        np.add.at(cover, (rows, np.minimum(bars.ravel() + WIN[1] + 1, n_bars)), -1)
        mult[np.cumsum(cover, 1)[:, :n_bars] > 0] = np.sqrt(eiv)
        e = e * mult
        e[rows, bars.ravel()] += effect * 0.01  # the unconditional residual s.d. is 0.01
        r = 0.8 * m[None, :] + e
        names = [f"s{i}" for i in range(c)]
        # the grid is known: build the Panel directly instead of sorting c x n_bars rows
        frame = W.Panel(names, origin, bar, ts.dtype, {"return": r}, np.zeros(c, dtype=np.int64),
                        np.full(c, n_bars - 1, dtype=np.int64), {a: i for i, a in enumerate(names)})
        ev = pl.DataFrame({"ts": ts.gather(bars.ravel()), "asset": [f"s{i}" for i in rows]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run(frame, ev, estimation=EST, window=WIN, model="market", market=mframe, overlap="keep",
                      event_overlap=event_overlap, tests=["cross_sectional_t"])
        bat = res._battery
        order = np.argsort(bat.asset_idx, kind="stable")
        splits = np.flatnonzero(np.diff(bat.asset_idx[order])) + 1
        for idx in np.split(order, splits):
            sub = TestBattery(bat.fit.take(idx))
            sub.asset_idx, sub.bar_idx = bat.asset_idx[idx], bat.bar_idx[idx]
            sub.est_window, sub.win0 = bat.est_window, bat.win0
            used.append(idx.size)
            for t in tests:
                hits[t]["ar"] += bool(sub.bar(t).pvalue[j0] < level)
                for k, (a, b) in CARS.items():
                    hits[t][k] += bool(sub.car_test(t, a - WIN[0], b - WIN[0], "").pvalue < level)
    out = {t: {k: v / n_reps for k, v in d.items()} for t, d in hits.items()}
    out["n_used"] = float(np.mean(used))
    return out


TABLE_TESTS = ("patell", "cross_sectional_t", "bmp", "bmp_kp", "corrado_rank", "wilcoxon", "design_hc")


def size_table(n_reps: int = 1000, *, seed: int = 0, n_events: int = 500, tests=TABLE_TESTS) -> pl.DataFrame:
    """Size (no effect) and power (0.5 and 1 s.d. at bar 0) under ``thin``; size under ``keep``.

    Returns
    -------
    polars.DataFrame
        ``overlap, test, size_ar, size_car_0_4, size_car_full, power05_ar, power05_car_0_4,
        power1_ar, power1_car_0_4`` (rates in percent; power null under ``keep``) and ``events``
        (mean events used per replication).
    """
    rows = []
    for pol in ("thin", "keep"):
        s = simulate(n_reps, n_events=n_events, tests=tests, event_overlap=pol, seed=seed)
        p5 = p1 = None
        if pol == "thin":
            p5 = simulate(n_reps, n_events=n_events, tests=tests, event_overlap=pol, seed=seed + 1, effect=0.5)
            p1 = simulate(n_reps, n_events=n_events, tests=tests, event_overlap=pol, seed=seed + 2, effect=1.0)
        for t in tests:
            def pw(d, k, t=t):
                return None if d is None else 100 * d[t][k]

            rows.append({"overlap": pol, "test": t, "size_ar": 100 * s[t]["ar"], "size_car_0_4": 100 * s[t]["car_0_4"],
                         "size_car_full": 100 * s[t]["car_full"], "power05_ar": pw(p5, "ar"),
                         "power05_car_0_4": pw(p5, "car_0_4"), "power1_ar": pw(p1, "ar"),
                         "power1_car_0_4": pw(p1, "car_0_4"), "events": s["n_used"]})
    return pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in ("power05_ar", "power05_car_0_4", "power1_ar", "power1_car_0_4")})


def format_table(tab: pl.DataFrame) -> str:
    """Fixed-width text of :func:`size_table` (the form the docs carry)."""
    head = (f"{'overlap':<8}{'test':<19}{'size AR':>8}{'CAR0,4':>8}{'CAR-24,72':>10}"
            f"{'pw.5 AR':>8}{'pw.5 C':>8}{'pw1 AR':>8}{'pw1 C':>8}{'events':>8}")
    lines = [head]
    for r in tab.fill_null(float("nan")).iter_rows(named=True):
        lines.append(f"{r['overlap']:<8}{r['test']:<19}{r['size_ar']:>8.1f}{r['size_car_0_4']:>8.1f}"
                     f"{r['size_car_full']:>10.1f}{r['power05_ar']:>8.1f}{r['power05_car_0_4']:>8.1f}"
                     f"{r['power1_ar']:>8.1f}{r['power1_car_0_4']:>8.1f}{r['events']:>8.0f}")
    return "\n".join(lines)


def main(argv=None) -> pl.DataFrame:
    ap = argparse.ArgumentParser(description="Size/power table of the event-study tests (single asset, clustered events)")
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tab = size_table(args.reps, seed=args.seed, n_events=args.events)
    print(format_table(tab))
    return tab


if __name__ == "__main__":
    main()
