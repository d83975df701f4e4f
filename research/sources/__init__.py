"""Data sources: one module per provider, all writing canonical tables through :mod:`research.lake`.

* :mod:`research.sources.http` - verified, resumable downloader and the download manifest.
* :mod:`research.sources.binance` - data.binance.vision archive (futures USD-M and spot).
* :mod:`research.sources.feargreed` - alternative.me Crypto Fear & Greed index.
* :mod:`research.sources.etf` - spot Bitcoin ETF daily flows from a Farside-style table.
* :mod:`research.sources.coinalyze` - Coinalyze API (liquidations after 2024-03-31, OI, funding, L/S).
* :mod:`research.sources.importer` - CSV/Parquet dashboard exports via mappings and presets.
* :mod:`research.sources.base` - the one provider interface (datasets, pagination, rate limits) and
  its fetch engine, used by :mod:`~research.sources.bybit`, :mod:`~research.sources.okx`,
  :mod:`~research.sources.hyperliquid`, :mod:`~research.sources.deribit`,
  :mod:`~research.sources.tardis` and :mod:`~research.sources.coinglass`.
"""
