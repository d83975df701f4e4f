"""Fault injection: whatever is damaged or killed, nothing wrong is read, and repair restores the clean rows."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from research import lake
from research.errors import LakeCorruptError
from research.lake.repair import repair
from research.lake.verify import verify

KEY = ["source", "venue", "market", "symbol", "interval", "ts"]
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flip(path, offset, n=8):
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _repaired(d, clean):
    rep = repair(d)
    assert rep.ok, rep.summary()
    assert verify(d).ok
    assert lake.read("bars", d).equals(clean)
    return rep


def test_clean_lake_verifies(raw_lake):
    d, clean = raw_lake
    rep = verify(d)
    assert rep.ok, rep.summary()
    assert rep.lake_files == 4 and rep.raw_files == 4


def test_stray_copies_and_other_tables_files_are_never_read_and_repair_removes_them(raw_lake):
    d, clean = raw_lake
    f = lake.table_files("bars", d, symbol="BTCUSDT", years=[2024])[0]
    (f.parent / "backup").mkdir()
    shutil.copy(f, f.parent / "backup" / "part.parquet")  # the copy of issue #14
    shutil.copy(f, f.parent / "part-000009-0123456789ab.parquet")  # looks like a part, no log lists it
    shutil.copy(f, d / "lake" / "bars" / "funding.parquet")  # another table's file dropped under bars/
    (f.parent / ".part-000009.parquet.123.tmp").write_bytes(b"half")
    (d / "lake" / "_truth").mkdir()
    (d / "lake" / "_truth" / "synthetic_truth.parquet").write_bytes(b"kept")  # a sidecar, not a table
    assert lake.read("bars", d).equals(clean)
    assert len(lake.table_files("bars", d)) == 4
    names = {p.path.name: p.kind for p in verify(d).problems}
    assert names == {"part.parquet": "stray", "part-000009-0123456789ab.parquet": "orphan",
                     "funding.parquet": "stray", ".part-000009.parquet.123.tmp": "orphan"}
    rep = _repaired(d, clean)
    assert len(rep.removed) == 4 and not (f.parent / "backup").exists()
    assert (d / "lake" / "_truth" / "synthetic_truth.parquet").read_bytes() == b"kept"


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_flipped_bytes_in_a_data_page_are_refused_named_and_rebuilt(raw_lake, keep_mtime):
    d, clean = raw_lake
    f = lake.table_files("bars", d, symbol="ETHUSDT", years=[2025])[0]
    st = f.stat()
    _flip(f, st.st_size // 2)
    if keep_mtime:  # bit rot that leaves the file's times alone: only verify's full hash sees it
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        with pytest.raises(LakeCorruptError, match=f"{f.name}.*research repair"):
            lake.table_files("bars", d)
        with pytest.raises(LakeCorruptError):
            lake.read("bars", d, symbol="ETHUSDT")
        assert lake.read("bars", d, symbol="BTCUSDT").equals(clean.filter(pl.col("symbol") == "BTCUSDT"))
    bad = verify(d).problems
    assert [(p.kind, p.path) for p in bad] == [("hash", f)]
    rep = _repaired(d, clean)
    assert rep.dropped == [f] and len(rep.rebuilt) == 1


def test_a_deleted_part_is_refused_named_and_rebuilt(raw_lake):
    d, clean = raw_lake
    f = lake.table_files("bars", d, symbol="BTCUSDT", years=[2025])[0]
    f.unlink()
    with pytest.raises(LakeCorruptError, match=f"{f.name}: listed in the table log but missing; run `research repair`"):
        lake.table_files("bars", d)
    assert [(p.kind, p.path) for p in verify(d).problems] == [("missing", f)]
    _repaired(d, clean)


def test_a_damaged_footer_is_refused_named_and_rebuilt(raw_lake):
    d, clean = raw_lake
    f = lake.table_files("bars", d, symbol="BTCUSDT", years=[2024])[0]
    _flip(f, f.stat().st_size - 12)  # footer length and magic
    with pytest.raises(LakeCorruptError, match=f.name):
        lake.read("bars", d)
    assert [(p.kind, p.path) for p in verify(d).problems] == [("hash", f)]
    _repaired(d, clean)


def test_a_truncated_part_is_refused_by_its_size(raw_lake):
    d, clean = raw_lake
    f = lake.table_files("bars", d, symbol="BTCUSDT", years=[2024])[0]
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(LakeCorruptError, match="bytes, the table log says"):
        lake.table_files("bars", d)
    _repaired(d, clean)


CHILD = textwrap.dedent("""
    import os, signal, sys
    import polars as pl
    import research.fileio as fileio
    import research.lake.table as T
    data_dir, phase, frame = sys.argv[1:4]
    def die(name):
        if name == phase:
            os.kill(os.getpid(), signal.SIGKILL)
    T._phase = die
    if phase == "log_rename":  # killed between the new log's fsync and its rename
        real = fileio.os.replace
        def replace(src, dst):
            if str(dst).endswith("_log.json"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        fileio.os.replace = replace
    T.write("bars", pl.read_parquet(frame), data_dir)
""")

PHASES = ["staged:1", "staged:3", "staged:5", "before_commit", "log_rename", "after_commit", "none"]


@pytest.mark.parametrize("phase", PHASES)
def test_kill_at_each_phase_of_a_multi_partition_write_shows_old_or_new_exactly(raw_lake, tmp_path, phase):
    d, clean = raw_lake
    # new values for every stored row (rewrites all four files) plus a new symbol (two new files)
    new_rows = pl.concat([clean.with_columns(pl.col("close") + 0.25),
                          clean.filter(pl.col("symbol") == "BTCUSDT").with_columns(symbol=pl.lit("SOLUSDT"))])
    expected_new = new_rows.sort(KEY)
    frame = tmp_path / "frame.parquet"
    new_rows.write_parquet(frame)
    env = {**os.environ, "PYTHONPATH": PROJECT}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(d), phase, str(frame)], env=env, capture_output=True,
                          text=True, timeout=120)
    killed = proc.returncode == -9
    assert killed == (phase != "none"), proc.stderr
    got = lake.read("bars", d)
    committed = phase in ("after_commit", "none")
    assert got.equals(expected_new if committed else clean)
    listed = set(lake.table_files("bars", d))
    stray = {p.path for p in verify(d).problems}
    assert listed.isdisjoint(stray)
    assert all(p.kind == "orphan" for p in verify(d).problems)
    assert repair(d).ok and verify(d).ok
    assert lake.read("bars", d).equals(got)
    lake.write("bars", new_rows, d)  # a rerun converges on the new state
    assert lake.read("bars", d).equals(expected_new)


WRITER = textwrap.dedent("""
    import sys
    import polars as pl
    from research import lake
    data_dir, frame, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = pl.read_parquet(frame)
    for i in range(k):  # several commits each, interleaving with the other process
        lake.write("bars", df.filter(pl.col("ts").dt.day() % k == i), data_dir)
""")


def test_two_processes_writing_one_table_are_serialised_and_lose_nothing(raw_lake, tmp_path):
    d, clean = raw_lake
    btc = clean.filter(pl.col("symbol") == "BTCUSDT")
    a = btc.with_columns(symbol=pl.lit("AAAUSDT"))
    b = btc.with_columns(symbol=pl.lit("BBBUSDT"), close=pl.col("close") * 2)
    c = btc.with_columns(pl.col("volume") + 1)  # same partitions as stored rows
    frames = []
    for name, df in (("a", pl.concat([a, c.filter(pl.col("ts").dt.day() <= 15)])),
                     ("b", pl.concat([b, c.filter(pl.col("ts").dt.day() > 15)]))):
        frames.append(tmp_path / f"{name}.parquet")
        df.write_parquet(frames[-1])
    env = {**os.environ, "PYTHONPATH": PROJECT}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), str(f), "4"], env=env, stderr=subprocess.PIPE,
                              text=True) for f in frames]
    for p in procs:
        assert p.wait(timeout=180) == 0, p.stderr.read()
    want = pl.concat([clean.filter(pl.col("symbol") != "BTCUSDT"), c, a, b]).sort(KEY)
    assert lake.read("bars", d).equals(want)
    assert verify(d).ok
