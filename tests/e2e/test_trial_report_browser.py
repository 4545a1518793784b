"""The HTML trial report in a real headless browser: Debian's Chromium, driven by Playwright.

The report is served over a real HTTP server on 127.0.0.1; the page must load with no console
error, no page error and no failed or off-origin request (it is self-contained), every plot must
render with a non-zero size, and a full-page screenshot must be a real, non-blank image.
Chromium comes from `tests/support/chromium.py` (found, or installed with apt-get; a failure,
never a skip, when it cannot be).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from tests.support.chromium import CHROMIUM_ARGS, ChromiumNotFoundError, find_chromium
from tests.support.trial_fixtures import classification_trial, retrieval_trial
from trivium.trials.report import write_report

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError as exc:  # pragma: no cover - the dev extra installs it
    raise ImportError(
        "PLAYWRIGHT IS MISSING: install the dev extra (pip install 'playwright>=1.40'); "
        "its browsers are not needed (Debian's chromium is used)"
    ) from exc


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return find_chromium()
    except ChromiumNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory): a real HTTP server on 127.0.0.1 serving `tmp_path/site`."""
    site = tmp_path / "site"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.timeout(900)  # the first run may install chromium; a warm run takes seconds
def test_html_report_renders_in_chromium(
    chromium: Path, served: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, site = served
    pages = {}
    for record, cases in (classification_trial(), retrieval_trial()):
        (page_path,) = write_report(record, cases, "html", site / f"{record.feature}.html")
        pages[page_path.name] = page_path.read_text().count("<svg")
    assert pages == {"ticket-triage.html": 5, "pubmedqa-rag.html": 2}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=list(CHROMIUM_ARGS), timeout=30_000
        )
        try:
            for name, expected_plots in pages.items():
                _check_page(browser, f"{base_url}/{name}", expected_plots, tmp_path / f"{name}.png")
        finally:
            browser.close()


def _check_page(browser: Browser, url: str, expected_plots: int, shot: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requested: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    page.on("request", lambda r: requested.append(r.url))
    response = page.goto(url, wait_until="load", timeout=15_000)
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle", timeout=10_000)

    assert problems == []
    assert requested == [url]  # nothing else: the page is self-contained
    boxes = page.eval_on_selector_all(
        "figure.plot > svg",
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [e.parentElement.id, r.width, r.height]; })",
    )
    assert len(boxes) == expected_plots
    for plot_id, width, height in boxes:
        assert width > 200, (plot_id, width, height)
        assert height > 100, (plot_id, width, height)
    # The plots' text is text the browser laid out (svg.fonttype none), not paths.
    assert page.locator("#plot-latency svg text").count() > 5
    assert page.locator("section.arm table").count() >= 2

    page.screenshot(path=str(shot), full_page=True)
    _assert_not_blank(shot)
    page.close()


def _assert_not_blank(png: Path) -> None:
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    pixels = np.asarray(imread(str(png)))[..., :3]
    height, width = pixels.shape[:2]
    assert width >= 1000, (width, height)
    assert height > 900, (width, height)  # the full page: taller than the viewport
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"{len(colours)} colours: a blank page"
    not_white = np.any(pixels < 0.95, axis=-1).mean()
    assert 0.02 < not_white < 0.9, f"{not_white:.1%} of the page is not white"
