"""The one provider interface: declarations, generated CLI help, throttling and parameter errors."""
from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from research.errors import SourceError
from research.sources import base
from tests.sources.test_bybit import route
from tests.sources.venue_server import FAST, venue_server  # noqa: F401


@pytest.mark.parametrize("name", list(base.PROVIDER_MODULES))
def test_every_provider_declares_and_gets_a_generated_command(name):
    from research.cli import app

    prov = base.get_provider(name)
    assert prov.docs and prov.datasets and set(prov.default_datasets) <= set(prov.datasets)
    for d in prov.datasets.values():
        assert d.default_interval is None or d.default_interval in d.intervals
    r = CliRunner().invoke(app, ["fetch", name, "--help"], terminal_width=240)
    assert r.exit_code == 0, r.output
    for d in prov.datasets:
        assert d in r.output
    assert prov.base_url_env in r.output


def test_requests_are_spaced_by_the_declared_rate_limit(tmp_path, venue_server):
    from tests.sources.test_okx import route as okx_route

    srv = venue_server(okx_route)
    waits = []
    kw = {**FAST, "throttle": True, "sleep": waits.append}  # sleep is recorded, not slept
    s = base.fetch("okx", ["funding"], ["BTC-USDT-SWAP"], start=date(2025, 1, 1), end=date(2025, 4, 30),
                   data_dir=tmp_path, base=srv.url, **kw)
    assert s.exit_code == 0 and s.planned == 4  # windows of 100 settlements
    limit = base.get_provider("okx").rate_limit.min_interval  # 5 requests / 2 s
    # each wait tops the time since the previous request up to the limit (busy machines wait less)
    assert len(waits) == 3 and all(0 < w <= limit for w in waits)


def test_bad_requests_fail_before_any_download(tmp_path, venue_server):
    srv = venue_server(route)
    for kw, msg in (({"datasets": ["nope"]}, "unknown dataset"), ({"extra": {"x": "1"}}, "unknown parameter"),
                    ({"interval": "7m", "datasets": ["klines"]}, "not offered"),
                    ({"start": date(2025, 2, 1)}, "before --start")):
        args = {"datasets": ["funding"], "start": date(2025, 1, 1), **kw}
        with pytest.raises(SourceError, match=msg):
            base.fetch("bybit", args.pop("datasets"), ["BTCUSDT"], end=date(2025, 1, 31), data_dir=tmp_path,
                       base=srv.url, **args, **FAST)
    assert not srv.log
    with pytest.raises(SourceError, match="unknown provider"):
        base.get_provider("nope")
