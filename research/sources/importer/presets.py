"""Named mappings for the real pack in ``../shared/data/real``, and the packs built from them.

Units, zones and open last bars follow ``../shared/data/real/PROVENANCE.md``:

* CoinGlass funding is **percent**, OI-weighted across venues (their interval normalisation is not
  documented: ``interval_hours = 8`` is an assumption); CoinGlass OI is USD across all exchanges.
* Coinalyze OI is USD (``convert_to_usd=true``); Coinalyze liquidations are **BTC** and are converted
  to USD with the close of the lake's BTCUSDT 1d bars at each day (perp where present, else spot;
  see :mod:`.convert`); its last day (2025-04-29) is incomplete and dropped.
* Exchange funding files are **decimal** per settlement; ``supervik`` times are **UTC+3**.
* REST kline files (``silertrades``, ``twitter-bot``, ``denniskid``) end with a bar that was still
  open when captured: it is dropped (``drop_last_rows``); so is the open last CoinGlass day.

Packs (``research import --pack NAME``, :func:`research.sources.importer.import_pack`):

* ``standard`` - :data:`REAL_PACK` over :data:`REAL_PACK_WINDOW` (Oct 2025 - Apr 2026, BTC, 1h-4h).
* ``long`` - :data:`LONG_PACK`, whole files: BTC daily/8h/4h/1h from 2019-2021 to 2026, ETH and
  SOL perp bars and funding, Fear & Greed from 2018, ETF flows from 2024.
"""
from __future__ import annotations

from datetime import date

_CG = "denniskid2520+btcusdt-research-archive/src/data"
_TB = "twitter-bot-tech+btc-funding-arb/data"
_MV = "movahed-abdolahi+Bitcoin-project"
_SL = "silertrades+gravestone-data/data"
_SV = "supervik+historical-funding-rates-fetcher/data"
_PK = "pakchu+rllm/data"
_ISO_NAIVE = {"column": "timestamp", "format": "%Y-%m-%dT%H:%M:%S", "timezone": "UTC", "label": "start"}
_OHLC = {"open": "open:price", "high": "high:price", "low": "low:price", "close": "close:price"}
_ARCHIVE_KLINE = {**_OHLC, "volume": "volume:base", "quote_volume": "quoteVolume:usd", "trades": "trades:count",
                  "taker_buy_volume": "takerBuyBase:base", "taker_buy_quote_volume": "takerBuyQuote:usd"}

PRESETS: dict[str, dict] = {
    # ------------------------------------------------------------------ standard pack (Oct 2025 - Apr 2026)
    "coinglass_liquidations_4h": {
        "file": f"{_CG}/coinglass_liquidation_4h.csv", "table": "liquidations", "time": _ISO_NAIVE,
        "values": {"long_usd": "long_usd:usd", "short_usd": "short_usd:usd"},
        "constants": {"venue": "binance", "symbol": "BTC", "interval": "4h", "source": "coinglass"},
        "note": "CoinGlass aggregated-history with exchange_list=Binance: all Binance BTC contracts (coin level), "
                "USD; built from throttled liquidation feeds, so a lower bound.",
    },
    "coinglass_oi_4h": {
        "file": f"{_CG}/coinglass_oi_4h.csv", "table": "open_interest", "time": _ISO_NAIVE,
        "values": {"oi_usd": "close:usd"},
        "constants": {"venue": "all", "symbol": "BTC", "interval": "4h", "source": "coinglass"},
        "note": "CoinGlass aggregated OI OHLC across all exchanges (USD, inferred from magnitude); the close is "
                "stored at the bar end, when it is known.",
    },
    "coinglass_funding_4h": {
        "file": f"{_CG}/coinglass_funding_4h.csv", "table": "funding", "time": {**_ISO_NAIVE, "bucket": "4h"},
        "values": {"rate": "close:percent"},
        "constants": {"venue": "all", "symbol": "BTC", "interval_hours": 8, "source": "coinglass"},
        "note": "CoinGlass OI-weighted funding OHLC across exchanges, in percent (converted to decimal); the close "
                "is stored at the bar end. UNCERTAIN: CoinGlass does not document how venues with 1h/4h/8h "
                "intervals are normalised; interval_hours=8 is an assumption.",
    },
    "binance_perp_1h": {
        "file": "gg-cmk+binance-quant/data/BTCUSDT-1h-futures.csv", "table": "bars",
        "time": {"column": "openTime", "format": "epoch_ms", "timezone": "UTC", "label": "start"},
        "values": _ARCHIVE_KLINE,
        "constants": {"venue": "binance", "market": "perp", "symbol": "BTCUSDT", "interval": "1h",
                      "source": "binance_vision"},
        "note": "gg-cmk archive-row CSV: data.binance.vision USD-M monthly kline rows written back verbatim "
                "(header renamed), so the source is binance_vision.",
    },
    "binance_spot_1h": {
        "file": f"{_CG}/btcusdt_1h_5year.csv", "table": "bars", "time": {**_ISO_NAIVE, "format": "iso"},
        "values": {**_OHLC, "volume": "volume:base"},
        "constants": {"venue": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "1h",
                      "source": "binance_api"},
        "drop_last_rows": 1,
        "note": "denniskid Binance spot REST klines (naive ISO = bar open, UTC; 6-decimal rendering); the last bar "
                "was still open when captured and is dropped.",
    },
    "binance_funding_8h": {
        "file": "gg-cmk+binance-quant/data/BTCUSDT-funding.csv", "table": "funding",
        "time": {"column": "fundingTime", "format": "epoch_ms", "timezone": "UTC", "label": "instant"},
        "values": {"rate": "fundingRate:decimal", "interval_hours": "fundingIntervalHours:hours"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "source": "binance_vision"},
        "note": "gg-cmk archive-row CSV of data.binance.vision fundingRate (calc_time with ms jitter, E-notation).",
    },
    "coinglass_top_ls_1d": {
        "file": f"{_CG}/coinglass_top_ls_1d.csv", "table": "positioning", "time": {**_ISO_NAIVE, "bucket": "1d"},
        "values": {"top_trader_ls_ratio": "ratio:ratio"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "coinglass"},
        "note": "CoinGlass Binance BTCUSDT top-trader long/short POSITION ratio (long/short, 2 decimals), daily; "
                "a day's value is stored at the day's end, when it is known.",
    },
    "farside_etf_flows": {
        "file": "Mohammad-Hannan+mcg_macro_intel/data/btc_etf_flows.csv", "table": "etf_flows", "format": "farside",
        "constants": {"source": "farside"},
        "note": "Farside BTC ETF flow table (US$ millions, footer rows Total/Average/Maximum/Minimum), 2024-01-11 on.",
    },
    "fear_greed_csv": {
        "file": f"{_TB}/fng.csv", "table": "sentiment",
        "time": {"column": "date", "format": "%Y-%m-%d", "label": "start"},
        "values": {"value": "fng:index", "label": "classification:text"},
        "constants": {"index": "fear_greed", "source": "alternative_me"},
        "note": "alternative.me Fear & Greed daily values (UTC dates), 2024-06-25 .. 2026-06-25.",
    },
    # ------------------------------------------------------------------ long daily / 8h / 4h series
    "coinglass_oi_1d": {
        "file": f"{_CG}/coinglass_oi_1d.csv", "table": "open_interest", "time": _ISO_NAIVE,
        "values": {"oi_usd": "close:usd"},
        "constants": {"venue": "all", "symbol": "BTC", "interval": "1d", "source": "coinglass"},
        "drop_last_rows": 1,
        "note": "CoinGlass aggregated OI OHLC across all exchanges, daily from 2020-02-27 (USD, inferred); the "
                "close is stored at the day's end. The last day (2026-04-04) was open when captured: dropped.",
    },
    "coinglass_funding_1d": {
        "file": f"{_CG}/coinglass_funding_1d.csv", "table": "funding", "time": {**_ISO_NAIVE, "bucket": "1d"},
        "values": {"rate": "close:percent"},
        "constants": {"venue": "all", "symbol": "BTC", "interval_hours": 8, "source": "coinglass_1d"},
        "drop_last_rows": 1,
        "note": "CoinGlass OI-weighted funding, daily OHLC from 2020-03-31, PERCENT per settlement (converted to "
                "decimal); the day's close is stored at the day's end. source coinglass_1d: the funding table has "
                "no interval column and this series disagrees with the 4h one at shared midnights (97/179 closes "
                "equal). UNCERTAIN normalisation of mixed venue intervals; interval_hours=8 assumed. Open last "
                "day dropped.",
    },
    "coinalyze_oi_1d": {
        "file": f"{_MV}/Bitcoin_derivatives/output/bitcoin_open_interest.csv", "table": "open_interest",
        "time": {"column": "timestamp", "format": "%Y-%m-%d", "timezone": "UTC", "label": "start"},
        "values": {"oi_usd": "close_oi:usd"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "coinalyze"},
        "drop_last_rows": 1,
        "note": "Coinalyze BTCUSDT_PERP.A (Binance USD-M) daily OI OHLC, USD (convert_to_usd=true), 2021-03-19 .. "
                "2025-04-28; the day's close is stored at its end; the incomplete last day is dropped.",
    },
    "coinalyze_liquidations_1d": {
        "file": f"{_MV}/Bitcoin_derivatives/output/bitcoin_liquidation_history.csv", "table": "liquidations",
        "time": {"column": "timestamp", "format": "%Y-%m-%d", "timezone": "UTC", "label": "start"},
        "values": {"long_usd": "long_liq:base", "short_usd": "short_liq:base"},
        "price": {"symbol": "BTCUSDT", "interval": "1d", "markets": ["perp", "spot"]},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval": "1d", "source": "coinalyze"},
        "drop_last_rows": 1,
        "note": "Coinalyze BTCUSDT_PERP.A daily liquidations 2020-04-15 .. 2025-04-28 in BTC (most likely; no "
                "convert_to_usd), converted to USD with the close of the lake's BTCUSDT 1d bar of the same day "
                "(perp where present, else spot). Throttled feeds: lower bounds. Incomplete last day dropped.",
    },
    "binance_funding_8h_rest": {
        "file": f"{_TB}/funding_btcusdt.csv", "table": "funding",
        "time": {"column": "fundingTime", "format": "iso", "label": "instant"},
        "values": {"rate": "fundingRate:decimal"},
        "constants": {"venue": "binance", "symbol": "BTCUSDT", "interval_hours": 8, "source": "binance_api"},
        "note": "twitter-bot Binance USD-M REST fundingRate, decimal per 8 h, 2019-09-10 .. 2026-06-29 (UTC with "
                "ms jitter); equal to the archive rows on all 1633 common settlements.",
    },
    "binance_spot_1d": {
        "file": f"{_CG}/btcusdt_1d_6year.csv", "table": "bars", "time": _ISO_NAIVE,
        "values": {**_OHLC, "volume": "volume:base"},
        "constants": {"venue": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "1d", "source": "binance_api"},
        "drop_last_rows": 1,
        "note": "denniskid Binance spot daily klines 2020-04-05 .. 2026-04-04 (UTC days); open last bar dropped.",
    },
    "binance_spot_4h": {
        "file": f"{_CG}/btcusdt_4h_6year.csv", "table": "bars", "time": _ISO_NAIVE,
        "values": {**_OHLC, "volume": "volume:base"},
        "constants": {"venue": "binance", "market": "spot", "symbol": "BTCUSDT", "interval": "4h", "source": "binance_api"},
        "drop_last_rows": 1,
        "note": "denniskid Binance spot 4h klines from 2020-04-05 (UTC); open last bar dropped.",
    },
    "binance_perp_4h": {
        "file": "gg-cmk+binance-quant/data/BTCUSDT-4h-futures.csv", "table": "bars",
        "time": {"column": "openTime", "format": "epoch_ms", "timezone": "UTC", "label": "start"},
        "values": _ARCHIVE_KLINE,
        "constants": {"venue": "binance", "market": "perp", "symbol": "BTCUSDT", "interval": "4h",
                      "source": "binance_vision"},
        "note": "gg-cmk verbatim data.binance.vision 4h kline rows 2025-01 .. 2026-07.",
    },
    **{f"binance_{mk}_8h": {
        "file": f"{_TB}/{mk}_8h_btcusdt.csv", "table": "bars",
        "time": {"column": "openTime", "format": "iso", "label": "start"},
        "values": {**_OHLC, "volume": "volume:base"},
        "constants": {"venue": "binance", "market": mk, "symbol": "BTCUSDT", "interval": "8h", "source": "binance_api"},
        "drop_last_rows": 1,
        "note": f"twitter-bot Binance {mk} REST 8h klines from 2019-09-08 (UTC); open last bar dropped.",
    } for mk in ("perp", "spot")},
}

# silertrades Binance USD-M REST klines: BTC, ETH, SOL at 1h (4500 bars), 4h (4500), 1d (800 from 2024-01-10)
for _sym in ("BTC", "ETH", "SOL"):
    for _iv in ("1h", "4h", "1d"):
        PRESETS[f"binance_perp_{_iv}_{_sym.lower()}_rest"] = {
            "file": f"{_SL}/{_iv}/{_sym}USDT.csv", "table": "bars",
            "time": {"column": "timestamp", "format": "epoch_ms", "timezone": "UTC", "label": "start"},
            "values": {**_OHLC, "volume": "volume:base", "quote_volume": "quote_volume:usd", "trades": "trades:count"},
            "constants": {"venue": "binance", "market": "perp", "symbol": f"{_sym}USDT", "interval": _iv,
                          "source": "binance_api"},
            "drop_last_rows": 1,
            "note": f"silertrades Binance USD-M REST {_iv} klines of {_sym}USDT (no taker columns); open last bar dropped.",
        }
    PRESETS[f"supervik_binance_funding_{_sym.lower()}"] = {
        "file": f"{_SV}/{_sym}-USDT/{_sym}-USDT_binance_2020-01-01_2024-01-01_funding_history.csv", "table": "funding",
        "time": {"column": "Date", "format": "%Y-%m-%d %H:%M:%S%.f", "timezone": "+03:00", "label": "instant"},
        "values": {"rate": "Funding Rate:decimal"},
        "constants": {"venue": "binance", "symbol": f"{_sym}USDT", "interval_hours": 8, "source": "binance_api"},
        "note": f"supervik Binance {_sym}USDT REST funding 2020-2023, decimal per 8 h; Date is the collector's "
                "local time, UTC+3 (no DST), shifted to UTC.",
    }
PRESETS.pop("supervik_binance_funding_sol")  # supervik has no SOL file
for _sym in ("ETH", "SOL"):
    for _tag, _years in (("lore", "2023_2024"), ("lorc", "2024_2025"), ("cres", "2025_2026h1")):
        PRESETS[f"binance_funding_8h_{_sym.lower()}_{_years}"] = {
            "file": f"{_PK}/binance_um_{_tag}_{_years}/{_sym}USDT_funding_{_years}.csv.gz", "table": "funding",
            "time": {"column": "funding_time", "format": "epoch_ms", "timezone": "UTC", "label": "instant"},
            "values": {"rate": "funding_rate:decimal"},
            "constants": {"venue": "binance", "symbol": f"{_sym}USDT", "interval_hours": 8, "source": "binance_api"},
            "note": f"pakchu Binance USD-M REST funding of {_sym}USDT ({_years}), decimal per 8 h (gzip CSV); the "
                    "overlapping years of these files are identical, so they merge on the key.",
        }
        if _sym == "SOL":  # SOLUSDT really printed down to -0.93 % per 8 h in Jan 2023, beyond the default bound
            PRESETS[f"binance_funding_8h_sol_{_years}"]["bounds"] = {"funding_max_8h": 0.02}
PRESETS["fear_greed_history"] = {
    "file": f"{_MV}/Bitcoin_sentiments/outputs/fear_greed_index.csv", "table": "sentiment",
    "time": {"column": "date", "format": "%Y-%m-%d", "label": "start"},
    "values": {"value": "fear_greed_index:index", "label": "fear_greed_label:text"},
    "constants": {"index": "fear_greed", "source": "alternative_me"},
    "note": "movahed alternative.me Fear & Greed full history 2018-02-01 .. 2025-04-29 (equal to fng.csv on all "
            "308 common days, so both merge under source alternative_me).",
}

#: The standard real pack: presets imported by :func:`import_real_pack`.
REAL_PACK = ("coinglass_liquidations_4h", "coinglass_oi_4h", "coinglass_funding_4h", "coinglass_top_ls_1d",
             "binance_perp_1h", "binance_spot_1h", "binance_funding_8h", "farside_etf_flows", "fear_greed_csv")
REAL_PACK_WINDOW = (date(2025, 10, 1), date(2026, 4, 30))
#: The long pack: every multi-year series (bars first: they price the coin-denominated liquidations).
LONG_PACK = (
    "binance_spot_1d", "binance_spot_4h", "binance_spot_8h", "binance_spot_1h",
    "binance_perp_8h", "binance_perp_4h", "binance_perp_1h", "binance_perp_1d_btc_rest",
    *(f"binance_perp_{iv}_{s}_rest" for s in ("eth", "sol") for iv in ("1h", "4h", "1d")),
    "binance_funding_8h_rest", "supervik_binance_funding_eth",
    *(f"binance_funding_8h_{s}_{y}" for s in ("eth", "sol") for y in ("2023_2024", "2024_2025", "2025_2026h1")),
    "coinglass_oi_1d", "coinglass_funding_1d", "coinglass_top_ls_1d", "coinalyze_oi_1d", "coinalyze_liquidations_1d",
    "farside_etf_flows", "fear_greed_history", "fear_greed_csv",
)
LONG_PACK_WINDOW: tuple[date | None, date | None] = (None, None)  # whole files: 2018-02 .. 2026-07
#: ``research import --pack NAME``: name -> (presets, (start, end)).
PACKS = {"standard": (REAL_PACK, REAL_PACK_WINDOW), "long": (LONG_PACK, LONG_PACK_WINDOW)}
