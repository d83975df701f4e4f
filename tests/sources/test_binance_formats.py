"""Archive format traps, each with a small synthetic fixture written here in the documented format."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from research import lake
from research.errors import SourceError
from research.sources import binance
from research.sources.binance import FileTask

from .archive_util import put

pytestmark = pytest.mark.network

UTC = timezone.utc
KLINE_HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def kline_rows(t0: datetime, n: int, step: timedelta, unit: int = 1000, base: float = 100.0) -> str:
    rows = []
    for i in range(n):
        o = int((t0 + i * step).timestamp()) * unit
        c = o + int(step.total_seconds()) * unit - 1
        p = base + i
        rows.append(f"{o},{p:.2f},{p + 2:.2f},{p - 1:.2f},{p + 1:.2f},10.5,{c},1050.0,{7 + i},4.25,425.0,0")
    return "\n".join(rows) + "\n"


def fetch(srv, data_dir, datasets, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("backoff", 0.001)
    return binance.fetch(kw.pop("symbols", ["BTCUSDT"]), datasets, data_dir=data_dir, base=srv.url, **kw)


@pytest.mark.parametrize("header", [True, False], ids=["header", "headerless"])
def test_futures_klines_with_and_without_header(tmp_path, serve, data_dir, header):
    t = FileTask("klines", "um", "BTCUSDT", "daily", "2021-03-01", "1h")
    put(tmp_path, t, (KLINE_HEADER if header else "") + kline_rows(datetime(2021, 3, 1, tzinfo=UTC), 24, timedelta(hours=1)))
    s = fetch(serve(tmp_path), data_dir, ["klines"], interval="1h", start=date(2021, 3, 1), end=date(2021, 3, 1))
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", data_dir)
    assert bars.height == 24
    assert bars["open"].to_list() == [100.0 + i for i in range(24)]
    assert bars["trades"].to_list() == [7 + i for i in range(24)]
    assert bars["ts"][0] == datetime(2021, 3, 1, tzinfo=UTC)


def test_spot_microseconds_from_2025_detected_per_value(tmp_path, serve, data_dir):
    # spot files never have a header; timestamps are ms until 2024-12-31 and us from 2025-01-01
    dec = FileTask("klines", "spot", "BTCUSDT", "daily", "2024-12-31", "1h")
    jan = FileTask("klines", "spot", "BTCUSDT", "daily", "2025-01-01", "1h")
    put(tmp_path, dec, kline_rows(datetime(2024, 12, 31, tzinfo=UTC), 24, timedelta(hours=1), unit=1000))
    put(tmp_path, jan, kline_rows(datetime(2025, 1, 1, tzinfo=UTC), 24, timedelta(hours=1), unit=1_000_000, base=200))
    s = fetch(serve(tmp_path), data_dir, ["klines"], market="spot", interval="1h",
              start=date(2024, 12, 31), end=date(2025, 1, 1))
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", data_dir).sort("ts")
    assert bars.height == 48 and set(bars["market"]) == {"spot"}
    ts = bars["ts"].to_list()
    assert ts[0] == datetime(2024, 12, 31, tzinfo=UTC) and ts[-1] == datetime(2025, 1, 1, 23, tzinfo=UTC)
    assert all(b - a == timedelta(hours=1) for a, b in zip(ts, ts[1:]))


def test_epoch_unit_by_magnitude():
    df = pl.DataFrame({"t": [1735689600, 1735689600000, 1735689600000000, 1735689600000000000]})
    out = df.select(binance.epoch_to_utc("t")).to_series().to_list()
    assert out[0] is None  # seconds are not an archive unit: rejected by the parsers
    assert out[1] == out[2] == out[3] == datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("hours", [8, 4, 1])
def test_funding_interval_hours_e_notation_and_jitter(tmp_path, serve, data_dir, hours):
    t = FileTask("fundingRate", "um", "XUSDT", "monthly", "2025-03")
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    n = 31 * 24 // hours
    rates = ["6.8E-7", "-6E-8", "-1.0E-7", "0.00010000", "-0.00001408"]
    body = "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
        f"{ms(t0 + timedelta(hours=hours * i)) + (i % 4)},{hours},{rates[i % len(rates)]}\n" for i in range(n))
    put(tmp_path, t, body)
    s = fetch(serve(tmp_path), data_dir, ["fundingRate"], symbols=["XUSDT"], start=date(2025, 3, 1), end=date(2025, 3, 31))
    assert s.exit_code == 0, s.summary()
    f = lake.read("funding", data_dir).sort("ts")
    assert f.height == n and set(f["interval_hours"]) == {hours}
    assert f["rate"][:5].to_list() == [6.8e-7, -6e-8, -1.0e-7, 0.0001, -0.00001408]
    assert f["ts"][1] == t0 + timedelta(hours=hours, milliseconds=1)  # the published jitter is kept


def metrics_csv(labels: list[datetime], base_oi: float) -> str:
    head = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n")
    return head + "".join(
        f"{lab:%Y-%m-%d %H:%M:%S},BTCUSDT,{base_oi + i:.3f},{(base_oi + i) * 60000:.5f},1.5,1.8{i % 10},1.2,0.9\n"
        for i, lab in enumerate(labels))


def test_metrics_label_change_on_2026_06_25_gives_one_row_per_instant(tmp_path, serve, data_dir):
    five = timedelta(minutes=5)
    d24, d25, d26 = (datetime(2026, 6, d, tzinfo=UTC) for d in (24, 25, 26))
    # before the change: labels are period ends (00:05 .. next 00:00); from 06-25: period starts (00:00 .. 23:55)
    put(tmp_path, FileTask("metrics", "um", "BTCUSDT", "daily", "2026-06-24"), metrics_csv([d24 + five * (i + 1) for i in range(288)], 1000))
    put(tmp_path, FileTask("metrics", "um", "BTCUSDT", "daily", "2026-06-25"), metrics_csv([d25 + five * i for i in range(288)], 2000))
    put(tmp_path, FileTask("metrics", "um", "BTCUSDT", "daily", "2026-06-26"), metrics_csv([d26 + five * i for i in range(288)], 3000))
    s = fetch(serve(tmp_path), data_dir, ["metrics"], start=date(2026, 6, 24), end=date(2026, 6, 26))
    assert s.exit_code == 0, s.summary()
    oi = lake.read("open_interest", data_dir).sort("ts")
    pos = lake.read("positioning", data_dir).sort("ts")
    assert oi.height == pos.height == 3 * 288
    ts = oi["ts"].to_list()
    assert ts[0] == d24 + five and ts[-1] == d26 + timedelta(days=1)
    assert all(b - a == five for a, b in zip(ts, ts[1:]))  # no duplicate, no hole, no shift
    at = {t: v for t, v in zip(ts, oi["oi_base"].to_list())}
    assert at[d25] == 1000 + 287  # the 06-24 file's last row (labelled 06-25 00:00 = end of its period)
    assert at[d25 + five] == 2000  # the 06-25 file's first row (labelled 00:00 = start of its period)
    assert oi["oi_usd"][0] == pytest.approx(1000 * 60000)
    assert set(oi["interval"]) == {"5m"} and set(pos["interval"]) == {"5m"}
    assert pos["top_trader_ls_ratio"][0] == 1.80 and pos["account_ls_ratio"][0] == 1.2
    assert pos["taker_buy_sell_ratio"][0] == 0.9


def test_metrics_short_day_is_reported_not_filled(tmp_path, serve, data_dir):
    d = datetime(2024, 2, 16, tzinfo=UTC)
    put(tmp_path, FileTask("metrics", "um", "BTCUSDT", "daily", "2024-02-16"),
        metrics_csv([d + timedelta(minutes=5 * (i + 1)) for i in range(163)], 500))
    s = fetch(serve(tmp_path), data_dir, ["metrics"], start=date(2024, 2, 16), end=date(2024, 2, 17))
    assert s.exit_code == 2  # 02-17 is not in the archive: missing, reported
    assert [r.path.rsplit("/", 1)[1] for r in s.missing] == ["BTCUSDT-metrics-2024-02-17.zip"]
    assert any("163 five-minute rows" in w for w in s.warnings)
    assert lake.read("open_interest", data_dir).height == 163


def test_liquidation_snapshot_duplicates_sides_and_hourly_buckets(tmp_path, serve, data_dir):
    t0 = datetime(2024, 3, 31, tzinfo=UTC)
    head = ("time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
            "last_fill_quantity,accumulated_fill_quantity\n")
    r1 = f"{ms(t0 + timedelta(minutes=10))},SELL,LIMIT,IOC,0.5,69000.0,69100.0,FILLED,0.5,0.5\n"
    r2 = f"{ms(t0 + timedelta(minutes=20))},BUY,LIMIT,IOC,0.2,70000.0,70050.0,FILLED,0.2,0.2\n"
    r3 = f"{ms(t0 + timedelta(hours=5, minutes=1))},SELL,LIMIT,IOC,1.0,68000.0,0,NEW,0,0\n"
    put(tmp_path, FileTask("liquidationSnapshot", "um", "BTCUSDT", "daily", "2024-03-31"), head + r1 + r1 + r2 + r2 + r3)
    s = fetch(serve(tmp_path), data_dir, ["liquidationSnapshot"], start=date(2024, 3, 31), end=date(2024, 4, 30))
    assert s.exit_code == 0, s.summary()
    assert any("2024-03-31" in n and "coinalyze" in n for n in s.notes)  # April was not asked for, and it says why
    orders = lake.read("liquidation_orders", data_dir).sort("ts")
    assert orders.height == 3  # exact duplicates dropped
    assert orders["side"].to_list() == ["long", "short", "long"]  # SELL = a long was liquidated
    assert orders["usd"].to_list() == pytest.approx([0.5 * 69100.0, 0.2 * 70050.0, 1.0 * 68000.0])
    liq = lake.read("liquidations", data_dir).sort("ts")
    assert liq.height == 24 and set(liq["interval"]) == {"1h"}
    assert liq["long_usd"][0] == pytest.approx(0.5 * 69100.0) and liq["short_usd"][0] == pytest.approx(0.2 * 70050.0)
    assert liq["count"][0] == 2 and liq["long_usd"][5] == pytest.approx(68000.0)
    assert liq["long_usd"].sum() == pytest.approx(orders.filter(pl.col("side") == "long")["usd"].sum())


def test_liquidation_snapshot_after_march_2024_says_so():
    with pytest.raises(SourceError, match="not published for USD-M futures after 2024-03-31"):
        binance.plan(["BTCUSDT"], ["liquidationSnapshot"], start=date(2025, 10, 1), end=date(2025, 10, 31))


@pytest.mark.parametrize("market,header", [("um", True), ("spot", False)])
def test_aggtrades_to_one_minute_bars_with_taker_buy_volume(tmp_path, serve, data_dir, market, header):
    t0 = datetime(2025, 2, 3, tzinfo=UTC)
    unit = 1000 if market == "um" else 1_000_000  # spot 2025 files are in microseconds
    trades = [  # (offset s, price, qty, buyer_is_maker)
        (1, 100.0, 1.0, "false"), (30, 102.0, 2.0, "true"), (59, 101.0, 0.5, "false"),
        (61, 99.0, 3.0, "true"), (119, 98.5, 1.0, "false"),
    ]
    head = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n" if header else ""
    extra = "" if market == "um" else ",True"
    body = head + "".join(f"{i},{p},{q},{10 * i},{10 * i + 1},{int((t0 + timedelta(seconds=o)).timestamp()) * unit},{m}{extra}\n"
                          for i, (o, p, q, m) in enumerate(trades))
    put(tmp_path, FileTask("aggTrades", market, "BTCUSDT", "daily", "2025-02-03"), body)
    s = fetch(serve(tmp_path), data_dir, ["aggTrades"], market=market, start=date(2025, 2, 3), end=date(2025, 2, 3))
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", data_dir).sort("ts")
    assert bars.height == 2 and set(bars["source"]) == {"binance_aggtrades"} and set(bars["interval"]) == {"1m"}
    assert set(bars["market"]) == {"perp" if market == "um" else "spot"}
    b0 = bars.row(0, named=True)
    assert (b0["open"], b0["high"], b0["low"], b0["close"]) == (100.0, 102.0, 100.0, 101.0)
    assert b0["volume"] == 3.5 and b0["taker_buy_volume"] == 1.5  # is_buyer_maker false = taker buy
    assert b0["quote_volume"] == pytest.approx(100 + 204 + 50.5) and b0["trades"] == 6
    assert b0["taker_buy_quote_volume"] == pytest.approx(150.5)
    assert bars["taker_buy_volume"][1] == 1.0


@pytest.mark.parametrize("ds,market", [("markPriceKlines", "mark"), ("indexPriceKlines", "index"),
                                       ("premiumIndexKlines", "premium")])
def test_price_kline_datasets_map_to_markets(tmp_path, serve, data_dir, ds, market):
    t = FileTask(ds, "um", "BTCUSDT", "daily", "2025-05-05", "1h")
    rows = kline_rows(datetime(2025, 5, 5, tzinfo=UTC), 24, timedelta(hours=1))
    if market == "premium":  # premium index prices are around zero and can be negative
        rows = rows.replace(",100.00,", ",-0.0001,", 1)
    put(tmp_path, t, KLINE_HEADER + rows)
    s = fetch(serve(tmp_path), data_dir, [ds], start=date(2025, 5, 5), end=date(2025, 5, 5))
    assert s.exit_code == 0, s.summary()
    bars = lake.read("bars", data_dir)
    assert bars.height == 24 and set(bars["market"]) == {market}
    assert bars["volume"].null_count() == 24  # no traded volume for price indices


def test_plan_auto_granularity_and_errors():
    tasks, _ = binance.plan(["BTCUSDT"], ["klines", "fundingRate", "metrics"], interval="4h",
                            start=date(2025, 1, 30), end=date(2025, 3, 2))
    names = [t.name for t in tasks]
    assert names[:5] == ["BTCUSDT-4h-2025-01-30.zip", "BTCUSDT-4h-2025-01-31.zip", "BTCUSDT-4h-2025-02.zip",
                         "BTCUSDT-4h-2025-03-01.zip", "BTCUSDT-4h-2025-03-02.zip"]
    assert [n for n in names if "funding" in n] == ["BTCUSDT-fundingRate-2025-01.zip", "BTCUSDT-fundingRate-2025-02.zip",
                                                    "BTCUSDT-fundingRate-2025-03.zip"]  # monthly only
    assert sum("metrics" in n for n in names) == 32  # daily only
    assert tasks[2].archive_path == "data/futures/um/monthly/klines/BTCUSDT/4h/BTCUSDT-4h-2025-02.zip"
    with pytest.raises(SourceError, match="only for market"):
        binance.plan(["BTCUSDT"], ["fundingRate"], market="spot", start=date(2025, 1, 1), end=date(2025, 1, 2))
    with pytest.raises(SourceError, match="unknown Binance dataset"):
        binance.plan(["BTCUSDT"], ["trades2"], start=date(2025, 1, 1), end=date(2025, 1, 2))
