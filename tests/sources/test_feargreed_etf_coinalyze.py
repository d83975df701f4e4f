"""Fear & Greed, Farside ETF table and Coinalyze clients against a local server in the documented shapes."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from research import lake, paths
from research.errors import ImportMappingError, SourceError
from research.sources import coinalyze, etf, feargreed

pytestmark = pytest.mark.network
UTC = timezone.utc


def day_ts(y, m, d):
    return int(datetime(y, m, d, tzinfo=UTC).timestamp())


# ----------------------------------------------------------------------------- Fear & Greed
def test_feargreed_fetch_writes_sentiment_and_keeps_raw(tmp_path, serve, data_dir):
    doc = {"name": "Fear and Greed Index",
           "data": [{"value": "27", "value_classification": "Fear", "timestamp": str(day_ts(2025, 10, 11)),
                     "time_until_update": "3600"},
                    {"value": "64", "value_classification": "Greed", "timestamp": str(day_ts(2025, 10, 10))}],
           "metadata": {"error": None}}
    srv = serve(tmp_path)
    srv.json_routes["/fng/"] = json.dumps(doc).encode()
    s = feargreed.fetch(data_dir=data_dir, base=srv.url.rstrip("/"), backoff=0.001)
    assert s.exit_code == 0, s.summary()
    assert srv.log[0][1] == "/fng/?limit=0&format=json"
    df = lake.read("sentiment", data_dir).sort("date")
    assert df["date"].to_list() == [date(2025, 10, 10), date(2025, 10, 11)]
    assert df["value"].to_list() == [64.0, 27.0] and df["label"].to_list() == ["Greed", "Fear"]
    assert set(df["index"]) == {"fear_greed"} and set(df["source"]) == {"alternative_me"}
    raws = list((data_dir / "raw/alternative_me/fng").glob("*.json"))
    assert len(raws) == 1 and json.loads(raws[0].read_text()) == doc


def test_feargreed_api_error_is_reported(tmp_path, serve, data_dir):
    srv = serve(tmp_path)
    srv.json_routes["/fng/"] = json.dumps({"data": [], "metadata": {"error": "rate limited"}}).encode()
    s = feargreed.fetch(data_dir=data_dir, base=srv.url, backoff=0.001)
    assert s.exit_code == 1 and "rate limited" in s.summary()
    assert lake.read("sentiment", data_dir).height == 0


# ----------------------------------------------------------------------------- ETF table
FARSIDE_HTML = """<html><body><table class="etf">
<tr><th>Date</th><th>IBIT</th><th>FBTC</th><th>GBTC</th><th>Total</th></tr>
<tr><td>Fee</td><td>0.25%</td><td>0.25%</td><td>1.50%</td><td></td></tr>
<tr><td>10 Oct 2025</td><td>1,205.20</td><td>(12.3)</td><td>-</td><td>1,192.90</td></tr>
<tr><td>13 Oct 2025</td><td>0.0</td><td>-5.5</td><td>(100.0)</td><td>(105.5)</td></tr>
<tr><td>Total</td><td>1,205.20</td><td>(17.8)</td><td>(100.0)</td><td>1,087.40</td></tr>
<tr><td>Average</td><td>602.6</td><td>(8.9)</td><td>(100.0)</td><td>543.7</td></tr>
<tr><td>Maximum</td><td>1,205.20</td><td>-5.5</td><td>(100.0)</td><td>1,192.90</td></tr>
<tr><td>Minimum</td><td>0.0</td><td>(12.3)</td><td>(100.0)</td><td>(105.5)</td></tr>
</table></body></html>"""


def test_etf_fetch_farside_html(tmp_path, serve, data_dir):
    (tmp_path / "bitcoin-etf-flow-all-data").mkdir()
    (tmp_path / "bitcoin-etf-flow-all-data" / "index.html").write_text(FARSIDE_HTML)
    srv = serve(tmp_path)
    s = etf.fetch(url=srv.url + "bitcoin-etf-flow-all-data/index.html", data_dir=data_dir, backoff=0.001)
    assert s.exit_code == 0, s.summary()
    df = lake.read("etf_flows", data_dir)
    got = {(r["date"], r["product"]): r["flow_usd"] for r in df.iter_rows(named=True)}
    assert got == {
        (date(2025, 10, 10), "IBIT"): 1205.2e6, (date(2025, 10, 10), "FBTC"): -12.3e6,
        (date(2025, 10, 10), "TOTAL"): 1192.9e6,  # GBTC '-' = no data: no row, not a zero
        (date(2025, 10, 13), "IBIT"): 0.0, (date(2025, 10, 13), "FBTC"): -5.5e6,
        (date(2025, 10, 13), "GBTC"): -100.0e6, (date(2025, 10, 13), "TOTAL"): -105.5e6,
    }
    assert set(df["source"]) == {"farside"}


def test_etf_bad_cell_names_file_column_and_line(tmp_path):
    f = tmp_path / "flows.csv"
    f.write_text('Date,IBIT,Total\n10 Oct 2025,"1,205.20",1205.2\n13 Oct 2025,abc,0\n')
    with pytest.raises(ImportMappingError, match=r"flows.csv, column 'IBIT', line 3: 'abc'"):
        etf.read_table(f)
    f.write_text("Date,Total\nyesterday,1\n")
    with pytest.raises(ImportMappingError, match="line 2"):
        etf.read_table(f)


# ----------------------------------------------------------------------------- Coinalyze
def _routes(srv, t0):
    liq = [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t0, "l": 235601013.0, "s": 107461506.0},
                                                    {"t": t0 + 86400, "l": 1.0, "s": 2.0}]}]
    oi = [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t0, "o": 9e10, "h": 9.1e10, "l": 7e10, "c": 7.05e10}]}]
    fr = [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t0 + 3600 * h, "o": 0.01, "h": 0.01, "l": 0.005, "c": 0.0075}
                                                   for h in range(24)]}]
    ls = [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t0, "r": 1.8, "l": 64.3, "s": 35.7}]}]
    srv.json_routes.update({"/v1/liquidation-history": json.dumps(liq).encode(),
                            "/v1/open-interest-history": json.dumps(oi).encode(),
                            "/v1/funding-rate-history": json.dumps(fr).encode(),
                            "/v1/long-short-ratio-history": json.dumps(ls).encode()})


def test_coinalyze_maps_history_and_never_stores_the_key(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("COINALYZE_API_KEY", "KEY-abc-123")
    srv = serve(tmp_path)
    t0 = day_ts(2025, 10, 10)
    _routes(srv, t0)
    srv.faults["/v1/liquidation-history"].append(("status", 429, {"Retry-After": "0"}))
    s = coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations", "open_interest", "long_short"], start=date(2025, 10, 10),
                        end=date(2025, 10, 11), interval="daily", data_dir=data_dir, base=srv.url + "v1", backoff=0.001)
    assert s.exit_code == 0, s.summary()
    liq = lake.read("liquidations", data_dir).sort("ts")
    assert liq["ts"][0] == datetime(2025, 10, 10, tzinfo=UTC)  # bucket start
    assert liq["long_usd"][0] == 235601013.0 and liq["short_usd"][0] == 107461506.0
    assert set(liq["venue"]) == {"binance"} and set(liq["symbol"]) == {"BTCUSDT"} and set(liq["interval"]) == {"1d"}
    oi = lake.read("open_interest", data_dir)
    assert oi["ts"][0] == datetime(2025, 10, 11, tzinfo=UTC) and oi["oi_usd"][0] == 7.05e10  # close at the bucket end
    pos = lake.read("positioning", data_dir)
    assert pos["account_ls_ratio"][0] == 1.8
    reqs = [(p, {k.lower(): v for k, v in h.items()}) for _, p, h in srv.log]
    liq_req = [r for r in reqs if r[0].startswith("/v1/liquidation-history")]
    assert len(liq_req) == 2 and "convert_to_usd=true" in liq_req[-1][0] and f"from={t0}" in liq_req[-1][0]
    assert all(h["api_key"] == "KEY-abc-123" for _, h in reqs) and all("KEY-abc" not in p for p, _ in reqs)
    text = paths.manifest_path(data_dir).read_text()
    assert "KEY-abc-123" not in text and "liquidation-history" in text


def test_coinalyze_funding_keeps_settlement_instants_only(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("COINALYZE_API_KEY", "k")
    srv = serve(tmp_path)
    _routes(srv, day_ts(2025, 10, 10))
    s = coinalyze.fetch(["BTCUSDT_PERP.A"], ["funding"], start=date(2025, 10, 10), end=date(2025, 10, 10),
                        interval="1hour", data_dir=data_dir, base=srv.url + "v1")
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", data_dir).sort("ts")
    assert [t.hour for t in f["ts"]] == [8, 16, 0]  # 24 hourly buckets -> the three 8h settlement instants
    assert f["rate"].to_list() == pytest.approx([0.000075] * 3)  # percent -> decimal


def test_coinalyze_needs_a_key(monkeypatch, data_dir):
    monkeypatch.delenv("COINALYZE_API_KEY", raising=False)
    with pytest.raises(SourceError, match="COINALYZE_API_KEY"):
        coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], start=date(2025, 1, 1), end=date(2025, 1, 2), data_dir=data_dir)


def test_coinalyze_bad_key_is_reported_without_the_key(tmp_path, serve, data_dir, monkeypatch):
    monkeypatch.setenv("COINALYZE_API_KEY", "SECRETKEY")
    srv = serve(tmp_path)
    srv.faults["/v1/liquidation-history"].append(("status", 401))
    s = coinalyze.fetch(["BTCUSDT_PERP.A"], ["liquidations"], start=date(2025, 1, 1), end=date(2025, 1, 2),
                        data_dir=data_dir, base=srv.url + "v1")
    assert s.exit_code == 1 and "COINALYZE_API_KEY" in s.summary() and "SECRETKEY" not in s.summary()
