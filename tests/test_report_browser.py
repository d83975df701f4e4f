"""The report read in a real browser: every figure loads, no table cell is empty, no NaN/None on the page.

Builds the report on the simulated market for notebook 10 (three figures, four CAR windows; three months so it stays
quick), opens ``index.html`` in Debian's headless Chromium with selenium (as
``tests/test_jupyterlab_e2e.py`` does; skips with a reason without it, fails under ``CI``) and reads
the page as a researcher would see it.
"""
from __future__ import annotations

import re

import pytest

from tests.test_jupyterlab_e2e import browser, chromium  # noqa: F401 - the headless browser fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

_BAD_WORDS = re.compile(r"\b(NaN|None|nan|undefined)\b")


@pytest.fixture(scope="module")
def report(default_report):
    # the full default report (every notebook, on the simulated market), shared with tests/test_report.py
    assert default_report.simulated and not default_report.failed, [e.problem for e in default_report.failed]
    return default_report


def test_report_reads_clean_in_chromium(report, browser):
    from selenium.webdriver.common.by import By

    browser.get(report.index.as_uri())
    browser.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager'); "
                           "document.querySelectorAll('details').forEach(d => d.open = true);")
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    imgs = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const imgs = Array.from(document.images);
        Promise.all(imgs.map(i => i.decode().catch(() => null))).then(() =>
            done(imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])));
    """)
    assert imgs, "the report shows no figures"
    broken = [src for src, complete, width in imgs if not complete or width == 0]
    assert not broken, f"broken images: {broken}"

    empty = browser.execute_script("""
        return Array.from(document.querySelectorAll('td')).filter(td => td.textContent.trim() === '')
            .map(td => td.closest('table').className + ' | row: ' + td.parentElement.textContent.slice(0, 120));
    """)
    assert not empty, f"empty table cells: {empty[:5]}"

    text = browser.find_element(By.TAG_NAME, "body").text
    bad = sorted({m.group(0) for m in _BAD_WORDS.finditer(text)})
    assert not bad, f"the page shows {bad}: " + "; ".join(
        text[max(0, m.start() - 60):m.end() + 20].replace("\n", " ") for m in list(_BAD_WORDS.finditer(text))[:3])

    verdicts = browser.find_elements(By.CSS_SELECTOR, "table.verdicts tbody tr:not(.group)")
    assert verdicts
    for row in verdicts:
        cells = row.find_elements(By.TAG_NAME, "td")
        hypothesis, effect, n = cells[0].text, cells[1], cells[4].text
        assert not re.search(r"CAR\(-\d+h?,\s*-\d+h?\) after", hypothesis), hypothesis  # a pre-event window says before
        assert not re.search(r"\d[eE][+-]?\d", effect.text), f"scientific notation: {effect.text}"
        raw = effect.find_element(By.CSS_SELECTOR, ".n").get_attribute("title")
        assert raw.startswith("raw: effect "), raw  # the stored value is one hover away
        assert re.fullmatch(r"[\d,]+ \D+|–", n), f"N without its unit: {n!r}"
        assert cells[6].text.strip(), f"no conclusion: {hypothesis}"
    assert "cached" not in browser.find_element(By.ID, "runs").find_element(By.XPATH, "following::p[1]").text
