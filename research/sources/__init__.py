"""Data sources: one module per provider, all writing canonical tables through :mod:`research.lake`.

* :mod:`research.sources.http` - verified, resumable, bounded downloader (``Downloader``), with
  :mod:`~research.sources.redirects` (credentials never leave their origin),
  :mod:`~research.sources.limits` (size/line/row/time caps), :mod:`~research.sources.locks`
  (per-file locks), :mod:`~research.sources.manifest` (download manifest),
  :mod:`~research.sources.results` (``FetchResult``/``FetchSummary``) and
  :mod:`~research.sources.ingest` (download one file into a lake table).
* :mod:`research.sources.binance` - data.binance.vision archive (futures USD-M and spot), split
  into ``binance_layout``, ``binance_archive``, ``binance_checks``, ``binance_parse``, ``binance_ingest``.
* :mod:`research.sources.feargreed` - alternative.me Crypto Fear & Greed index.
* :mod:`research.sources.etf` - spot Bitcoin ETF daily flows from a Farside-style table.
* :mod:`research.sources.coinalyze` - Coinalyze API (liquidations after 2024-03-31, OI, funding, L/S).
* :mod:`research.sources.importer` - CSV/Parquet dashboard exports via mappings and presets.
* :mod:`research.sources.base` - the one provider interface (datasets, pagination, rate limits) and
  its fetch engine, used by :mod:`~research.sources.bybit`, :mod:`~research.sources.okx`,
  :mod:`~research.sources.hyperliquid`, :mod:`~research.sources.deribit`,
  :mod:`~research.sources.tardis` and :mod:`~research.sources.coinglass`.
"""
