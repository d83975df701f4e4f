"""Caps checked before a file is parsed: size, line length, rows, binary and damaged gzip input."""
from __future__ import annotations

import gzip

import pytest

from research.errors import ImportMappingError
from research.sources import importer
from research.sources.importer import Limits, Mapping
from research.sources.importer.reading import scan_csv

from .util import LIQ, write


def test_one_line_file_refused_by_line_cap(tmp_path):
    # a "1 GB one-line CSV", scaled down: the cap is lowered rather than the file made huge
    f = write(tmp_path, "one.csv", "time,long,short," + "x" * 300_000)
    with pytest.raises(ImportMappingError, match=r"one.csv, line 1: longer than the 100,000-byte line cap"):
        importer.parse_file(f, Mapping.from_dict(LIQ), limits=Limits(max_line_bytes=100_000))
    # the over-long line is found wherever it is, also across chunk boundaries (chunks are 1 MiB)
    body = "time,long,short\n" + "2025-10-10 21:00,1,2\n" * 60_000 + "9" * 1_500_000 + "\n2025-10-10 22:00,1,2\n"
    g = write(tmp_path, "mid.csv", body)
    with pytest.raises(ImportMappingError, match=r"mid.csv, line 60002: longer than the 1,048,576-byte line cap"):
        scan_csv(g, Limits())
    assert scan_csv(write(tmp_path, "ok.csv", "a,b\n1,2\n3,4"), Limits()) == 3


def test_file_size_and_row_caps(tmp_path):
    f = write(tmp_path, "x.csv", "time,long,short\n" + "2025-10-10 21:00,1,2\n" * 100)
    with pytest.raises(ImportMappingError, match=r"x.csv: 2,116 bytes is more than the 1,000-byte cap"):
        importer.parse_file(f, Mapping.from_dict(LIQ), limits=Limits(max_file_bytes=1000))
    with pytest.raises(ImportMappingError, match=r"x.csv: more than the 50-row cap"):
        importer.parse_file(f, Mapping.from_dict(LIQ), limits=Limits(max_rows=50))


def test_binary_and_damaged_inputs(tmp_path):
    f = write(tmp_path, "img.csv", b"time,long\n\x89PNG\x00\x00garbage")
    with pytest.raises(ImportMappingError, match=r"img.csv: binary file \(NUL byte at offset 14\)"):
        importer.parse_file(f, Mapping.from_dict(LIQ))
    g = write(tmp_path, "x.csv.gz", gzip.compress(b"time,long,short\n2025-10-10 21:00,1,2\n")[:-12])
    with pytest.raises(ImportMappingError, match=r"x.csv.gz: cannot be decompressed"):
        importer.parse_file(g, Mapping.from_dict(LIQ))
    # a gzip bomb: counted as it decompresses, refused at the cap
    h = write(tmp_path, "bomb.csv.gz", gzip.compress(b"time,long,short\n" + b"2025-10-10 21:00,1,2\n" * 200_000))
    with pytest.raises(ImportMappingError, match="decompresses to more than the 1,000,000-byte cap"):
        importer.parse_file(h, Mapping.from_dict(LIQ), limits=Limits(max_file_bytes=1_000_000))
    p = write(tmp_path, "x.parquet", b"PAR1 not really")
    with pytest.raises(ImportMappingError, match=r"x.parquet: cannot read as parquet"):
        importer.parse_file(p, Mapping.from_dict(LIQ))
    with pytest.raises(ImportMappingError, match="no such file"):
        importer.parse_file(tmp_path / "missing.csv", Mapping.from_dict(LIQ))


def test_malformed_csv_and_odd_parquet_types(tmp_path):
    import polars as pl

    cases = {
        "dup.csv": ("time,long,long,short\n2025-10-10 21:00,1,2,3\n", r"dup.csv, line 1: column 'long' appears more than once"),
        "ragged.csv": ("time,long,short\n2025-10-10 21:00,1,2,3,4\n", r"ragged.csv: cannot read as csv \(found more fields"),
        "empty.csv": ("", r"empty.csv: cannot read as csv"),
    }
    for name, (body, match) in cases.items():
        with pytest.raises(ImportMappingError, match=match):
            importer.parse_file(write(tmp_path, name, body), Mapping.from_dict(LIQ))
    assert importer.parse_file(write(tmp_path, "hdr.csv", "time,long,short\n"), Mapping.from_dict(LIQ)).height == 0
    pq = tmp_path / "nested.parquet"
    pl.DataFrame({"time": ["2025-10-10 21:00"], "long": [{"a": 1}], "short": [1.0]}).write_parquet(pq)
    with pytest.raises(ImportMappingError, match=r"nested.parquet: cannot be mapped .*plain text or numbers"):
        importer.parse_file(pq, Mapping.from_dict(LIQ))


def test_named_error_classes(tmp_path):
    from research.errors import ImplausibleValueError, InputLimitError

    f = write(tmp_path, "x.csv", "time,long,short\n" + "2025-10-10 21:00,1,2\n" * 10)
    with pytest.raises(InputLimitError):
        importer.parse_file(f, Mapping.from_dict(LIQ), limits=Limits(max_rows=5))
    g = write(tmp_path, "y.csv", "time,long,short\n2099-10-10 21:00,1,2\n")
    with pytest.raises(ImplausibleValueError):
        importer.parse_file(g, Mapping.from_dict(LIQ))
