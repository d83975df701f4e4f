"""Event-study engine speed.

1. 10,000 events x 241-bar event windows (250-bar estimation windows), market model, every
   parametric and rank test, then 1,000 event-resampling bootstrap draws: prints the times.
2. Side by side in this process, on the same 500 events and the market model: the PyPI package
   ``eventstudy==0.1a12`` (``pip install -e .[bench]``) against this engine. Prints both times,
   the ratio (target >= 50x) and the largest absolute CAR difference (must be ~0).

Run: ``python benchmarks/bench_eventstudy.py`` (``--quick``: small sizes, to check that the script
works; ``tests/test_bench_eventstudy.py`` runs that and checks the CARs against the package).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import warnings

import numpy as np
import polars as pl

from research import eventstudy as es

N_ASSETS, N_BARS = 10, 120_000
EST, WIN = (-370, -121), (-120, 120)
SEED = 20240601


def make_data(n_assets=N_ASSETS, n_bars=N_BARS, seed=SEED):
    rng = np.random.default_rng(seed)
    ts = pl.datetime_range(dt.datetime(2010, 1, 1), dt.datetime(2010, 1, 1) + dt.timedelta(hours=n_bars - 1),
                           interval="1h", eager=True)
    m = rng.normal(0, 0.006, n_bars)
    frames = []
    for i in range(n_assets):
        r = rng.uniform(0.6, 1.4) * m + rng.normal(0, 0.01, n_bars)
        r[rng.random(n_bars) < 0.001] = np.nan  # a few missing bars
        frames.append(pl.DataFrame({"ts": ts, "asset": f"A{i}", "return": r}))
    return pl.concat(frames), pl.DataFrame({"ts": ts, "return": m}), ts


def part1(n_ev: int = 10_000, n_assets: int = N_ASSETS, n_bars: int = N_BARS, draws: int = 1000) -> dict:
    returns, market, ts = make_data(n_assets, n_bars)
    rng = np.random.default_rng(SEED + 1)
    bars = rng.integers(-EST[0], n_bars - WIN[1] - 1, n_ev)
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": [f"A{i}" for i in rng.integers(0, n_assets, n_ev)]})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = es.run(returns, ev, estimation=EST, window=WIN, model="market", market=market, overlap="keep",
                     min_spacing=None, car_windows=[WIN, (0, 10)])
    t1 = time.perf_counter()
    boot = es.bootstrap(res, horizons=[(0, h) for h in range(0, 121, 10)], n_draws=draws, seed=1)
    t2 = time.perf_counter()
    print(f"[1] {res.n_events} events x {len(res.event_time)} bars, {len(res.spec['tests'])} tests "
          f"({', '.join(res.spec['tests'])}): {t1 - t0:.2f} s")
    print(f"[1] bootstrap, {draws:,} draws x {boot.frame.height} horizons: {t2 - t1:.2f} s")
    return {"n_events": res.n_events, "tests": list(res.spec["tests"]), "run_s": t1 - t0, "bootstrap_s": t2 - t1}


def _timed(fn, repeat: int):
    """Best and median wall time of ``repeat`` calls (after one warm-up call), and the last result."""
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), out


def part2(n_ev: int = 500, n_bars: int = 20_000, repeat: int = 30, repeat_pkg: int = 5) -> dict:
    est_size, buffer, win = 250, 30, (-10, 10)
    returns, market, ts = make_data(n_assets=5, n_bars=n_bars, seed=SEED + 2)
    returns = returns.with_columns(pl.col("return").fill_nan(0.0))  # the package cannot handle gaps
    rng = np.random.default_rng(SEED + 3)
    bars = rng.integers(est_size + buffer - win[0] + 1, n_bars - win[1] - 1, n_ev)
    assets = [f"A{i}" for i in rng.integers(0, 5, n_ev)]
    ev = pl.DataFrame({"ts": ts.gather(bars), "asset": assets})
    estimation = (win[0] - buffer - est_size, win[0] - buffer - 1)  # the package's [T0, T1] in bars

    def ours(data, tests, bench=market):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return es.run(data, ev, estimation=estimation, window=win, model="market", market=bench,
                          overlap="keep", min_estimation=est_size, tests=tests)

    # (a) end to end from the polars frames, every test; (b) like for like with the package: the
    # grid built once with the benchmark in it (the package gets returns and market pre-loaded in
    # one table), market model, AR/CAR and t tests. Both engines: one warm-up call, then the best
    # (and median) of several calls, so a busy moment on the machine does not decide the ratio.
    t_all, _, res_all = _timed(lambda: ours(returns, None), max(1, repeat // 6))
    panel = es.build_panel(pl.concat([returns, market.with_columns(asset=pl.lit("MKT")).select(returns.columns)]))
    like = ["brown_warner_1980", "cross_sectional_t"]
    t_like, med_like, res = _timed(lambda: ours(panel, like, "MKT"), repeat)
    our_car = res.ar.sum(1)
    assert np.array_equal(our_car, res_all.ar.sum(1))
    print(f"[2] this engine, {res.n_events} events: end to end with all {len(res_all.spec['tests'])} tests "
          f"{t_all * 1e3:.1f} ms; market model + AR/CAR + t tests on a prebuilt grid {t_like * 1e3:.2f} ms "
          f"(median {med_like * 1e3:.2f} ms)")

    out = {"n_events": res.n_events, "ours_s": t_like, "ours_median_s": med_like, "ours_all_tests_s": t_all,
           "package": None}
    try:
        import eventstudy as pkg  # benchmark-only dependency (pyproject extra "bench")
    except Exception as exc:  # noqa: BLE001 - report any failure to import
        print(f"[2] PyPI eventstudy 0.1a12 could not be imported on Python {sys.version.split()[0]}: {exc!r}")
        return out
    wide = returns.pivot(on="asset", index="ts", values="return").sort("ts").join(
        market.rename({"return": "MKT"}), on="ts")
    data = {"date": wide["ts"].to_numpy().astype("datetime64[ns]")}
    for c in wide.columns:
        if c != "ts":
            data[c] = wide[c].to_numpy()
    dates = ev["ts"].to_numpy().astype("datetime64[ns]")
    event_list = [{"event_date": d, "security_ticker": a, "market_ticker": "MKT"} for d, a in zip(dates, assets)]

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pkg.Multiple.from_list(event_list, pkg.Single.market_model, event_window=win,
                                          estimation_size=est_size, buffer_size=buffer, ignore_errors=False)

    try:
        pkg.Single._save_parameter("returns", data)
        t_pkg, med_pkg, agg = _timed(theirs, repeat_pkg)
    except Exception as exc:  # noqa: BLE001
        print(f"[2] PyPI eventstudy 0.1a12 failed to run on Python {sys.version.split()[0]}: {exc!r}")
        out["package"] = f"failed: {exc!r}"
        return out
    their_car = np.array([s.CAR[-1] for s in agg.sample])
    diff = float(np.max(np.abs(their_car - our_car)))
    print(f"[2] PyPI eventstudy 0.1a12, same {len(agg.sample)} events, market model: {t_pkg * 1e3:.1f} ms "
          f"(median {med_pkg * 1e3:.1f} ms)")
    print(f"[2] ratio (like for like, best of each): {t_pkg / t_like:.1f}x faster (target >= 50x); "
          f"medians: {med_pkg / med_like:.1f}x; end to end with all tests: {t_pkg / t_all:.1f}x; "
          f"max |CAR difference| = {diff:.3e}")
    assert diff < 1e-10, f"CARs differ by {diff}"
    out.update(package="eventstudy 0.1a12", package_events=len(agg.sample), package_s=t_pkg,
               package_median_s=med_pkg, ratio=t_pkg / t_like, ratio_median=med_pkg / med_like,
               max_car_diff=diff)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: check that the benchmark runs")
    args = ap.parse_args(argv)
    if args.quick:
        return {"part1": part1(n_ev=300, n_assets=3, n_bars=4000, draws=50),
                "part2": part2(n_ev=60, n_bars=3000, repeat=2, repeat_pkg=1)}
    return {"part1": part1(), "part2": part2()}


if __name__ == "__main__":
    main()
