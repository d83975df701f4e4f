"""Fixtures for the detector tests: the simulated market and the real pack's BTCUSDT panel."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sim(sim_lake):
    """(panel, truth) of the simulated market."""
    from research import db, simulate

    return db.query("hourly_panel", sim_lake, symbol="BTCUSDT"), simulate.read_truth(sim_lake)


@pytest.fixture(scope="session")
def real_panel(real_lake):
    """The real pack's hourly BTCUSDT panel, Oct 2025 - Mar 2026 (CoinGlass aggregate USD OI)."""
    from research import db

    return db.query("hourly_panel", data_dir=real_lake, symbol="BTCUSDT", start="2025-10-01", end="2026-04-01",
                    oi_venue="all", liq_venue="binance")
