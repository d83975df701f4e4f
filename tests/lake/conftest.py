"""Lakes for the fault-injection tests: built from raw Binance archive zips through the real ingest path."""
from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl
import pytest

from research import lake
from research.sources import binance
from research.sources.binance import FileTask
from research.sources.http import FetchSummary, Manifest
from tests.sources.archive_util import put

UTC = dt.timezone.utc
HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
          "taker_buy_quote_volume,ignore\n")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
MONTHS = ("2024-12", "2025-01")  # two yearly partitions per symbol: four in all


def kline_csv(month: str, base: float) -> str:
    """A complete month of documented 1h kline rows (times in ms), prices drifting from ``base``."""
    y, m = map(int, month.split("-"))
    t0 = dt.datetime(y, m, 1, tzinfo=UTC)
    t1 = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    lines = []
    for i in range(int((t1 - t0).total_seconds() // 3600)):
        o = int((t0 + dt.timedelta(hours=i)).timestamp() * 1000)
        p = base + i * 0.5
        lines.append(f"{o},{p},{p + 2},{p - 1},{p + 1},10.5,{o + 3_599_999},{(p + 1) * 10.5:.4f},42,5.25,"
                     f"{(p + 1) * 5.25:.4f},0\n")
    return HEADER + "".join(lines)


def build_raw_lake(data_dir) -> pl.DataFrame:
    """Put raw zips + manifest records in ``data_dir`` and ingest them; return the clean ``bars`` rows."""
    manifest = Manifest(data_dir)
    batch = []
    for k, sym in enumerate(SYMBOLS):
        for month in MONTHS:
            task = FileTask("klines", "um", sym, "monthly", month, "1h")
            p = put(data_dir / "raw" / "binance", task, kline_csv(month, 100.0 + 1000 * k))
            manifest.append({"path": task.raw_rel, "status": "ok", "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                             "size": p.stat().st_size, "source": "binance", "event": "download"})
            batch.append((task, p))
    summary = FetchSummary()
    binance.ingest_batch(batch, data_dir, summary, manifest)
    assert not summary.ingest_errors, summary.ingest_errors
    return lake.read("bars", data_dir)


@pytest.fixture
def raw_lake(tmp_path):
    """(data_dir, clean bars rows) of a lake built from raw zips; each test gets its own copy."""
    d = tmp_path / "data"
    clean = build_raw_lake(d)
    assert clean.height == (31 + 31) * 24 * len(SYMBOLS)
    return d, clean
