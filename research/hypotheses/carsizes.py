"""Empirical size of the CAR study's candidate primary tests on placebo dates of one lake.

For each event type (the detectors of notebooks 10-12, with those notebooks' parameters, and the
selloff legs at the detector's defaults) the study's events are detected, then :func:`research.hypotheses.calibration.calibrate` measures the
rejection rate at 5 % of each test on placebo studies of the same series and design (same event
count, cluster gaps and trailing-volatility quintile, away from the real events). This is the
evidence for :data:`research.hypotheses.carverdicts.PRIMARY_TEST` (README, Verdicts)::

    python -m research.hypotheses.carsizes --data-dir DIR --start 2025-10-01 --end 2026-04-01 \\
        --oi-venue all --liq-venue binance --n-draws 1000
"""
from __future__ import annotations

import argparse
import ast
import warnings

import polars as pl

__all__ = ["EVENT_TYPES", "main", "notebook_parameters", "size_table"]

#: registry keys measured by default
EVENT_TYPES = ("funding_reset", "oi_collapse", "liquidation_print", "selloff")


def notebook_parameters(key: str) -> dict:
    """The detector parameters of event type ``key``'s notebook parameters cell ({} without a notebook)."""
    from research._imports import jsonschema_without_iri

    jsonschema_without_iri()
    import nbformat

    from research import paths

    from . import _NOT_STUDY
    from .carstudy import CAR_DEFAULTS
    from .registry import get

    stem = get(key).notebook
    path = paths.NOTEBOOKS_DIR / f"{stem}.ipynb" if stem else None
    if path is None or not path.exists():
        return {}
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    ns = {t.id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body  # literals only, never run
          if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    return {k: v for k, v in ns.items() if k not in _NOT_STUDY and k not in CAR_DEFAULTS}


def size_table(inputs, *, event_types=EVENT_TYPES, tests=("cross_sectional_t", "design_hc"),
               car_windows=((1, 24), (1, 72)), n_draws: int = 1000, seed: int = 0) -> pl.DataFrame:
    """``event_type, n_events, test, car_window, size, n_draws, mc_lo, mc_hi``, one row per cell.

    ``inputs`` is a :class:`research.panel.Inputs`; events come from each event type's notebook
    parameters (:func:`notebook_parameters`; detector defaults without a notebook). An event type
    without events gets no rows.
    """
    from . import event_type_study
    from .calibration import calibrate
    from .carstudy import CAR_DEFAULTS
    from .frames import returns_frame

    rows = []
    rf = returns_frame(inputs.panel)
    for key in event_types:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            events = event_type_study(key, inputs, n_placebo=0, **notebook_parameters(key)).events
        if events.height == 0:
            continue
        for test in tests:
            for cw in car_windows:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cal = calibrate(rf, events.select("ts"), tuple(CAR_DEFAULTS["event_window"]), test,
                                    car_window=tuple(cw), estimation=tuple(CAR_DEFAULTS["estimation_window"]),
                                    model=CAR_DEFAULTS["model"], n_draws=n_draws, seed=seed)
                rows.append({"event_type": key, "n_events": events.height, "test": test,
                             "car_window": f"[{cw[0]:+d},{cw[1]:+d}]", "size": cal.size, "n_draws": cal.n_draws,
                             "mc_lo": cal.mc_band[0], "mc_hi": cal.mc_band[1]})
    return pl.DataFrame(rows)


def main(argv=None) -> pl.DataFrame:
    """Print :func:`size_table` for a lake (see the module docstring)."""
    from research import hypotheses as H

    ap = argparse.ArgumentParser(prog="python -m research.hypotheses.carsizes", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--oi-venue")
    ap.add_argument("--liq-venue")
    ap.add_argument("--n-draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    kw = {k: v for k, v in {"start": a.start, "end": a.end, "oi_venue": a.oi_venue, "liq_venue": a.liq_venue}.items()
          if v is not None}
    inputs = H.load_inputs(a.data_dir, symbol=a.symbol, daily=False, **kw)
    tab = size_table(inputs, n_draws=a.n_draws, seed=a.seed)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=3):
        print(tab)
    return tab


if __name__ == "__main__":
    main()
