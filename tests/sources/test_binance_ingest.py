"""Batch ingest: the read-ahead ingester stores exactly what one batch at a time stores."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from research import lake
from research.sources import binance
from research.sources.binance import FileTask
from research.sources.manifest import Manifest
from research.sources.results import FetchSummary

from .archive_util import put
from .test_binance_formats import KLINE_HEADER, kline_rows

UTC = timezone.utc


def _tasks(root, n_days=6, bad=()):
    out = []
    for k in range(n_days):
        day = datetime(2025, 4, 1, tzinfo=UTC) + timedelta(days=k)
        t = FileTask("klines", "um", "BTCUSDT", "daily", day.date().isoformat(), "1h")
        text = KLINE_HEADER + kline_rows(day, 24, timedelta(hours=1), base=100.0 + k)
        if k in bad:  # a row of another day: the file is refused alone
            text += kline_rows(day + timedelta(days=3), 1, timedelta(hours=1))
        out.append((t, put(root / "raw" / "binance", t, text)))
    return out


def _ingest(data_dir, tasks, size, ahead):
    summary, manifest = FetchSummary(), Manifest(data_dir)
    batches = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    if ahead:
        with binance.BatchIngester(data_dir, summary, manifest) as ing:
            for b in batches:
                ing.submit(b)
    else:
        for b in batches:
            binance.ingest_batch(b, data_dir, summary, manifest)
    recs = [json.loads(x) for x in (data_dir / "manifest.jsonl").read_text().splitlines()]
    return summary, [(r["path"], r["ingest"], r.get("quarantined")) for r in recs]


def test_the_read_ahead_ingester_stores_what_batch_by_batch_stores(tmp_path):
    got = {}
    for ahead in (False, True):
        d = tmp_path / str(ahead)
        tasks = _tasks(d, bad=(3,))
        summary, recs = _ingest(d, tasks, 2, ahead)
        got[ahead] = (lake.read("bars", d), summary.ingested_files, summary.rejected, summary.rows_added, recs)
        refused = {p: (ing, q) for p, ing, q in recs}[tasks[3][0].raw_rel]
        assert refused == ("rejected", "quarantine/" + tasks[3][0].raw_rel) and (d / refused[1]).exists()
        assert not tasks[3][1].exists()
    assert got[True][0].equals(got[False][0]) and got[True][0].height == 5 * 24
    assert got[True][1:] == got[False][1:] and got[True][1:3] == (5, 1)

@pytest.mark.parametrize("ahead", [1, 2])
def test_an_error_in_the_block_stores_nothing_more_and_leaves_the_rest_pending(tmp_path, ahead):
    d = tmp_path / "data"
    tasks = _tasks(d)
    summary, manifest = FetchSummary(), Manifest(d)
    with pytest.raises(RuntimeError):
        with binance.BatchIngester(d, summary, manifest, ahead=ahead) as ing:
            for k in range(ahead + 1):  # the last submit stores the first batch; the others are only read
                ing.submit(tasks[2 * k:2 * k + 2])
            raise RuntimeError("interrupted")
    assert summary.ingested_files == 2
    assert lake.read("bars", d).height == 2 * 24  # the first batch, whole; nothing of the others
    _ingest(d, tasks[2:], 3, True)  # a rerun ingests the rest
    assert lake.read("bars", d).height == 6 * 24


def test_a_batch_of_large_zips_is_stored_before_the_next_is_read(tmp_path, monkeypatch):
    from research.sources import binance_ingest

    monkeypatch.setattr(binance_ingest, "BIG_BATCH_BYTES", 0)  # every batch counts as large
    d = tmp_path / "data"
    tasks = _tasks(d)
    with binance.BatchIngester(d, FetchSummary(), Manifest(d)) as ing:
        for k in range(3):
            ing.submit(tasks[2 * k:2 * k + 2])
            assert lake.read("bars", d).height == 2 * 24 * (k + 1)  # stored in submit, nothing held
