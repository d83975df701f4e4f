"""research.report: the one-command report on the simulated market and on a lake, through the CLI.

The fast tests run the fixture notebooks of ``tests/fixtures_nb`` (two numbered notebooks that
write results records with figures); the slow one runs the real ``notebooks/`` set.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html.parser
import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from research import batch, lake, paths, report
from research.cli import app
from research.errors import NotebookError

FIXTURES = Path(__file__).parent / "fixtures_nb"
runner = CliRunner()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.refs.append(v)


def _links(page: str) -> _Links:
    p = _Links()
    p.feed(page)
    return p


def _assert_offline_and_links_resolve(index: Path) -> _Links:
    from urllib.parse import unquote

    page = index.read_text()
    links = _links(page)
    assert "script" not in links.tags and "link" not in links.tags  # no JS, no external CSS
    for ref in links.refs:
        assert not re.match(r"^[a-z]+://|^//", ref), f"{ref} would need the network"
        if ref.startswith("#"):
            assert f'id="{ref[1:]}"' in page, ref
        else:
            assert (index.parent / unquote(ref)).exists(), f"broken relative link {ref}"
    return links


def test_select_notebooks_sorts_by_number_and_picks_subsets(tmp_path):
    for name in ("10-b.ipynb", "2-a.ipynb", "25-c.ipynb", "notes.ipynb", "x-10.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in report.select_notebooks(None, tmp_path)] == ["2-a.ipynb", "10-b.ipynb", "25-c.ipynb"]
    assert [p.name for p in report.select_notebooks(["25,2"], tmp_path)] == ["2-a.ipynb", "25-c.ipynb"]
    assert [p.name for p in report.select_notebooks(["10-b"], tmp_path)] == ["10-b.ipynb"]
    with pytest.raises(NotebookError, match="notebook '99' not found"):
        report.select_notebooks(["99"], tmp_path)
    with pytest.raises(NotebookError, match="no numbered notebooks"):
        report.select_notebooks(None, tmp_path / "empty")


def test_overrides_go_to_notebooks_that_declare_them(tmp_path):
    nbs = report.select_notebooks(None, FIXTURES)
    specs = report.plan_runs(nbs, {"alpha": "0.1", "seed": "3"}, data_dir=tmp_path, out_root=tmp_path / "runs")
    by = {Path(s.notebook).stem: s.parameters for s in specs}
    assert by == {"10-fixture-effect": {"seed": 3}, "20-fixture-funding": {"alpha": 0.1, "seed": 3}}
    with pytest.raises(NotebookError, match=r"\['alhpa'\] are not defined by any selected notebook"):
        report.plan_runs(nbs, {"alhpa": "0.1"}, data_dir=tmp_path, out_root=tmp_path)
    with pytest.raises(NotebookError, match="parameter 'alpha' expects float"):
        report.plan_runs(nbs, {"alpha": "high"}, data_dir=tmp_path, out_root=tmp_path)


def test_report_cli_bad_parameter_exits_2_before_anything_runs(tmp_path):
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "rep"), "--notebooks-dir", str(FIXTURES),
                              "--data-dir", str(tmp_path / "data"), "-p", "nope=1"])
    assert res.exit_code == 2 and "not defined by any selected notebook" in res.output
    assert not (tmp_path / "rep" / "index.html").exists()


def test_report_on_empty_lake_uses_simulated_market_and_says_so(tmp_path):
    user_data = tmp_path / "data"
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--out", str(out), "--data-dir", str(user_data),
                              "--notebooks-dir", str(FIXTURES), "-p", "horizon=12", "-q", "--figures", "png,svg,pdf"])
    assert res.exit_code == 0, res.output
    assert "empty" in res.output and "SIMULATED market" in res.output
    # the user's lake is never written to; the simulated market lives inside the report
    assert lake.is_empty(user_data) and not user_data.exists()
    assert not lake.is_empty(out / report.SYNTHETIC_DIR)

    index = out / "index.html"
    page = index.read_text()
    assert 'class="banner"' in page and "SYNTHETIC DATA" in page
    links = _assert_offline_and_links_resolve(index)
    # verdict table: one row per hypothesis with effect, CI, p-value, N and parameters
    data = json.loads((out / "report.json").read_text())
    assert data["simulated"] is True and data["synthetic"] is True
    recs = {r["notebook"]: r for r in data["records"]}
    assert set(recs) == {"10-fixture-effect", "20-fixture-funding"}
    v10 = recs["10-fixture-effect"]["verdicts"][0]
    assert v10["hypothesis"] == "mean signed 12-bar return after |z|>2.0 != 0"  # the -p override reached it
    assert recs["10-fixture-effect"]["synthetic"] is True
    assert f">{v10['n_events']:,} " in page and "horizon=12" in page  # N with its unit
    assert "mean funding rate &gt; 0" in page
    # the notebooks read the simulated lake: its funding settlements, not the fixture fallback
    assert recs["20-fixture-funding"]["coverage"]["sources"] == ["synthetic"]
    assert recs["20-fixture-funding"]["coverage"]["settlements"] > 100
    # gallery: PNG shown, SVG/PDF linked, all relative
    for ext in ("png", "svg", "pdf"):
        assert f"figures/10-fixture-effect/reversal_path.{ext}" in links.refs
    assert "figures/20-fixture-funding/funding_hist.png" in links.refs
    # executed notebooks linked; coverage, provenance and metadata present
    execs = [r for r in links.refs if r.endswith("executed.ipynb")]
    assert len(set(execs)) == 2 and all(r.startswith("runs/") for r in execs)
    assert "synthetic-data/" in links.refs
    assert "liquidation_orders" in page and "open_interest" in page  # lake coverage table
    assert "research.simulate.write_sample" in page
    meta = data["metadata"]
    assert meta["versions"]["papermill"] and meta["versions"]["polars"] in page
    commit = batch_git_commit()
    if commit:
        assert commit in page


def batch_git_commit() -> str:
    return report._git("rev-parse", "HEAD")


def _real_looking_lake(data_dir: Path) -> Path:
    """A funding table with source 'testsrc' plus a manifest naming the raw file it came from."""
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    n = 120
    df = pl.DataFrame({
        "ts": [t0 + dt.timedelta(hours=8 * i) for i in range(n)],
        "venue": "binance", "symbol": "BTCUSDT",
        "rate": [0.0001 + 0.00005 * ((i % 7) - 3) / 3 for i in range(n)],
        "interval_hours": 8, "source": "testsrc",
    })
    lake.write("funding", df, data_dir)
    raw = data_dir / "raw" / "testsrc" / "BTCUSDT-fundingRate-2025-01.zip"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(b"not really a zip, but bytes with a checksum")
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    lines = [
        {"url": "http://127.0.0.1:1/data/BTCUSDT-fundingRate-2025-01.zip", "path": str(raw.relative_to(data_dir)),
         "sha256": sha, "status": "ok", "size": raw.stat().st_size, "source": "testsrc"},
        {"path": str(raw.relative_to(data_dir)), "event": "ingest", "ingest": "ok", "rows": n},
        {"url": "http://127.0.0.1:1/data/gone.zip", "path": "raw/testsrc/gone.zip", "sha256": None, "status": "missing"},
    ]
    paths.manifest_path(data_dir).write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return raw


def test_report_on_a_lake_skips_failed_runs_and_shows_provenance(tmp_path):
    data = tmp_path / "data"
    raw = _real_looking_lake(data)
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    out = tmp_path / "rep"
    rep = report.build_report(out=out, data_dir=data, notebooks_dir=FIXTURES, parameters={"fail_at": "end"},
                              progress=False)
    assert not rep.simulated and not rep.synthetic
    assert not (out / report.SYNTHETIC_DIR).exists()
    assert [e.stem for e in rep.failed] == ["10-fixture-effect"]
    failed = rep.failed[0]
    assert "cell 8" in failed.problem and "fixture asked to fail after saving its record" in failed.problem
    page = rep.index.read_text()
    assert 'class="banner"' not in page
    _assert_offline_and_links_resolve(rep.index)
    # the failed notebook wrote a record before failing: it must not show up as a result
    assert "Fixture: big moves revert" not in page.split('id="figures"')[0].split('id="verdicts"')[1]
    assert "reversal_path" not in page
    assert "executed.FAILED.ipynb" in page and "partial notebook" in page
    # the other notebook read the lake's funding rows
    assert "mean funding rate &gt; 0" in page and "testsrc" in page
    rec20 = next(e.record for e in rep.entries if e.record)
    assert rec20.verdicts[0].n_events == 120 and rec20.synthetic is False
    # provenance: sha256 from the manifest (merged with the ingest event), missing file flagged
    assert sha in page and "http://127.0.0.1:1/data/BTCUSDT-fundingRate-2025-01.zip" in page
    assert "missing 1" in page and "1 not on disk" in page

    # CLI over the same report directory with --resume: the finished run is reused, exit 1 for the failure
    res = runner.invoke(app, ["report", "--out", str(out), "--data-dir", str(data), "--notebooks-dir", str(FIXTURES),
                              "-n", "20", "--resume", "-q"])
    assert res.exit_code == 0, res.output
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert [(Path(r["notebook"]).stem, r["status"]) for r in runs] == [("20-fixture-funding", "cached")]


def test_report_name_must_be_a_directory_name(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_REPORTS_DIR", str(tmp_path))
    with pytest.raises(NotebookError, match="plain directory name"):
        report.build_report(name="../evil", notebooks_dir=FIXTURES, data_dir=tmp_path / "d")


@pytest.mark.slow
def test_report_on_the_real_notebooks(default_report):
    nbs = batch.numbered_notebooks(paths.NOTEBOOKS_DIR)
    if not nbs:
        pytest.skip(f"{paths.NOTEBOOKS_DIR} has no numbered notebooks yet; the report runs them once they exist")
    rep = default_report
    assert rep.simulated and rep.synthetic
    assert not rep.failed, [(e.stem, e.problem) for e in rep.failed]
    assert [e.stem for e in rep.entries] == [p.stem for p in nbs]
    _assert_offline_and_links_resolve(rep.index)
    page = rep.index.read_text()
    assert "SYNTHETIC DATA" in page
    assert sum(len(e.record.verdicts) for e in rep.entries) > 0
    # every notebook with a tested hypothesis declares one primary test, and the report states its
    # calibration and power
    assert "Primary tests: calibration and power" in page
    for e in rep.entries:
        prim = [v for v in e.record.verdicts if v.primary]
        assert len(prim) <= 1 + (e.stem == "22-crowding-early-warning"), (e.stem, [v.hypothesis for v in prim])
        if any(v.pvalue is not None for v in e.record.verdicts if "(secondary)" not in v.hypothesis
               and "descriptive" not in (v.test or "")) and e.stem not in ("00-data-overview", "26-venue-shares"):
            assert prim, f"{e.stem}: no primary test"


def test_read_manifest_tolerates_bad_lines_and_merges_ingest(tmp_path):
    from research import paths

    mpath = paths.manifest_path(tmp_path)
    mpath.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.zip").write_bytes(b"x")
    mpath.write_text("\n".join([
        '{"path": "raw/a.zip", "status": "downloaded", "sha256": "aa", "time": "t1"}',
        "not json at all",
        "[1, 2]",
        '{"no_path": 1}',
        '{"path": "raw/a.zip", "event": "ingest", "ingest": "funding: 10 rows", "time": "t2"}',
        '{"path": "raw/b.zip", "status": "downloaded"}',
        '{"path": "raw/c.zip", "sta',       # a torn last line
    ]))
    rows = report.read_manifest(tmp_path)
    assert [r["path"] for r in rows] == ["raw/a.zip", "raw/b.zip"]
    a, b = rows
    assert a["sha256"] == "aa" and a["ingest"] == "funding: 10 rows" and a["ingest_time"] == "t2" and a["present"]
    assert b["present"] is False
