"""Shared helpers for the importer tests."""
from __future__ import annotations

from datetime import UTC, datetime

LIQ = {"table": "liquidations", "time": {"column": "time", "timezone": "UTC", "label": "start"},
       "values": {"long_usd": "long:usd_millions", "short_usd": "short:usd_millions"},
       "constants": {"venue": "bybit", "symbol": "BTC", "interval": "1h", "source": "export"}}
FUND = {"table": "funding", "time": {"column": "t", "timezone": "UTC", "label": "instant"},
        "values": {"rate": "close:decimal"}, "constants": {"venue": "x", "symbol": "BTC", "interval_hours": 8, "source": "s"}}


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def write(tmp_path, name: str, text: str | bytes):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p
