"""The report renders in a real headless Chromium with no network: at phone width, every image
decoded, nothing fetched, nothing wider than the screen; and it prints."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from browser import headless, load, requested_urls
from report_support import sample_inputs

from evaluation import report
from tabular.names import REPORT_HTML

PHONE = (390, 844)


@pytest.fixture(scope="module", params=["binary", "regression"])
def page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gate = (
        report.Gate("auc", "gte", 0.95)  # a failing gate: its page must render too
        if request.param == "binary"
        else report.Gate("rmse", "lte", 2.0)
    )
    path = tmp_path_factory.mktemp(request.param) / REPORT_HTML
    path.write_text(report.render_html(sample_inputs(request.param, gate)), encoding="utf-8")
    return path


def _image(png: bytes) -> np.ndarray:
    from matplotlib import image

    pixels: np.ndarray = image.imread(io.BytesIO(png), format="png")
    return pixels


def test_the_page_renders_offline_at_phone_width(page: Path, tmp_path: Path) -> None:
    with headless(*PHONE, mobile=True) as browser:
        load(browser, page)
        images = browser.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
            " i.getBoundingClientRect().width])"
        )
        page_width = browser.evaluate("document.documentElement.scrollWidth")
        headings = browser.evaluate("Array.from(document.querySelectorAll('h2')).length")
        shot = browser.screenshot()
        pdf = base64.b64decode(browser.call("Page.printToPDF")["data"])
        urls = requested_urls(browser)
    (tmp_path / "phone.png").write_bytes(shot)
    assert images and all(done and w > 0 and h > 0 for done, w, h, _ in images), images
    assert all(shown <= PHONE[0] for *_, shown in images)  # scaled to the screen
    assert page_width <= PHONE[0]  # no sideways scrolling of the page
    assert headings >= 7
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    pixels = _image(shot)
    assert pixels.shape[1] == PHONE[0]
    assert pixels.shape[0] > PHONE[1]  # the whole page, longer than one screen
    ink = np.mean(pixels[..., :3].min(axis=2) < 0.9)  # share of pixels that are not white
    assert ink > 0.05, f"the screenshot is nearly blank ({ink:.1%} ink)"
    assert pdf.startswith(b"%PDF")
