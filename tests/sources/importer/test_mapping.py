"""The mapping and its one YAML loader: dates stay strings; binary, aliased or odd files refused in one line."""
from __future__ import annotations

import pytest
import yaml

from research.errors import ImportMappingError
from research.sources.importer import Mapping, load_yaml_mapping

from .util import LIQ, write


def test_dates_stay_strings_and_mapping_builds(tmp_path):
    f = write(tmp_path, "m.yaml", "table: liquidations\ntime: {column: time, timezone: UTC, dayfirst: true}\n"
                                  "values: {long_usd: 'long:usd', short_usd: 'short:usd'}\n"
                                  "bounds: {min_date: 2020-01-01}\nconstants: {venue: x, symbol: BTC, interval: 1h, source: s}\n")
    doc = load_yaml_mapping(f)
    assert doc["bounds"]["min_date"] == "2020-01-01"  # a string, not a datetime.date
    m = Mapping.from_yaml(f)
    assert m.dayfirst is True and m.values["long_usd"].column == "long" and m.constants["interval"] == "1h"


@pytest.mark.parametrize("content, match", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary file \(NUL byte at offset 8\)"),
    (b"table: bars\nnote: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 21\)"),
    (b"table: [unclosed\n", r"line \d+, column \d+: not valid YAML"),
    (b"- a\n- b\n", "expected a YAML mapping"),
    (b"a: &x [1, 2]\nb: [*x, *x]\n", r"aliases \(\*x\) are not allowed"),
])
def test_hostile_mapping_files_are_one_line_errors(tmp_path, content, match):
    f = write(tmp_path, "m.yaml", content)
    with pytest.raises(ImportMappingError, match=match) as ei:
        Mapping.from_yaml(f)
    assert "\n" not in str(ei.value) and "m.yaml" in str(ei.value)


def test_oversized_mapping_refused_before_reading(tmp_path):
    f = write(tmp_path, "big.yaml", "note: " + "x" * 2000 + "\n")
    with pytest.raises(ImportMappingError, match="more than the 1,000-byte limit"):
        load_yaml_mapping(f, max_bytes=1000)
    with pytest.raises(ImportMappingError, match="No such file"):
        load_yaml_mapping(tmp_path / "nope.yaml")


def test_mapping_keys_are_checked():
    with pytest.raises(ImportMappingError, match=r"unknown mapping key\(s\) \['colour'\]"):
        Mapping.from_dict({**LIQ, "colour": "red"})
    with pytest.raises(ImportMappingError, match="dayfirst must be true or false"):
        Mapping.from_dict({**LIQ, "time": {"column": "time", "dayfirst": "yes"}})
    with pytest.raises(ImportMappingError, match="'price' must be a column name"):
        Mapping.from_dict({**LIQ, "price": 3})
    m = Mapping.from_dict({**LIQ, "price": "px"})
    assert m.price.column == "px"
    assert yaml.safe_dump(LIQ)  # the fixture is plain YAML-able data
