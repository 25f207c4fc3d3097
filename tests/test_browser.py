"""The rendered report in a real browser: headless Chromium at laptop width.

Every figure must load, the page must log no console errors and must not scroll sideways at
1366x768; a full-page screenshot is saved next to the report. Chromium and its driver are Debian
packages (`chromium`, `chromium-driver`) that `make setup` installs; without them this test fails.
"""

import contextlib
import shutil
from pathlib import Path

import matplotlib.image
import pytest

LAPTOP = (1366, 768)

BROKEN_IMAGES_JS = """
return Array.from(document.images)
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => ({src: img.getAttribute('src').slice(0, 80), alt: img.alt}));
"""

# The page's scroll width and, when it is wider than the window, the elements that stick out.
OVERFLOW_JS = """
const width = window.innerWidth;
const wide = Array.from(document.querySelectorAll('body *'))
    .map(el => [el, el.getBoundingClientRect()])
    .filter(([el, r]) => r.right > width + 1)
    .map(([el, r]) => ({tag: el.tagName.toLowerCase(), id: el.id, cls: el.className,
                        right: Math.round(r.right), width: Math.round(r.width)}));
return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide.slice(0, 10)};
"""


def browser_paths():
    """(chromium, chromedriver) from PATH; fails, not skips, when either is missing."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(f"headless browser test needs Chromium and chromedriver (found chromium={chromium}, "
                    f"chromedriver={driver}): run `make setup` (installs the Debian packages chromium and "
                    f"chromium-driver), or install them yourself")
    return chromium, driver


@contextlib.contextmanager
def headless_chromium(size=LAPTOP):
    """A headless Chromium (selenium WebDriver) with a window of `size` that records the console."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run `make setup` (pip install -e '.[test]')")
    chromium, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def open_page(driver, path: Path):
    """Load a local HTML file; returns once the load event (all images included) has fired."""
    driver.get(path.resolve().as_uri())


def image_count(driver) -> int:
    return driver.execute_script("return document.images.length;")


def broken_images(driver) -> list:
    """Images that did not load: not complete, or decoded to zero width."""
    return driver.execute_script(BROKEN_IMAGES_JS)


def console_errors(driver) -> list:
    """SEVERE entries of the browser console (console.error, failed loads, uncaught exceptions)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def horizontal_overflow(driver):
    """None if the page fits the window's width, else its scroll width, window width and the widest elements."""
    info = driver.execute_script(OVERFLOW_JS)
    return None if info["scrollWidth"] <= info["innerWidth"] + 1 else info


def full_page_screenshot(driver, path: Path) -> Path:
    """The whole page (not just the viewport) as a PNG at `path`, through the DevTools protocol."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    content = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": content["width"], "height": content["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_report_in_headless_chromium_at_laptop_width(finished_run):
    workdir, _ = finished_run
    report = workdir / "reports" / "ci" / "index.html"
    assert report.is_file(), f"no report at {report}"
    with headless_chromium() as driver:
        open_page(driver, report)
        assert driver.title.strip(), "report has no <title>"
        headings = [h.text for h in driver.find_elements("tag name", "h1")]
        assert headings and headings[0].strip(), "report has no visible <h1>"
        assert image_count(driver) >= 1, "report has no figures"
        assert broken_images(driver) == [], "figures that did not load"
        assert console_errors(driver) == [], "console errors while loading the report"
        assert horizontal_overflow(driver) is None, f"report scrolls sideways at {LAPTOP[0]} px"
        screenshot = full_page_screenshot(driver, report.parent / "screenshot.png")
    assert screenshot.stat().st_size > 0
    height, width = matplotlib.image.imread(screenshot).shape[:2]
    assert abs(width - LAPTOP[0]) <= 20, f"screenshot is {width} px wide, not about {LAPTOP[0]}"
    assert height >= LAPTOP[1], f"screenshot is {height} px high: not the full page"


def test_browser_checks_catch_a_broken_page(tmp_path):
    """The checks above can fail: a missing figure, a console.error and a too-wide element are all caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>broken</title></head><body><h1>broken</h1>'
                    '<img src="missing.png" alt="missing">'
                    '<div style="width: 3000px">too wide</div>'
                    '<script>console.error("boom")</script></body></html>')
    with headless_chromium() as driver:
        open_page(driver, page)
        assert image_count(driver) == 1
        assert [img["alt"] for img in broken_images(driver)] == ["missing"]
        errors = console_errors(driver)
        assert any("boom" in message for message in errors), errors
        overflow = horizontal_overflow(driver)
        assert overflow is not None and overflow["scrollWidth"] >= 3000
        assert any(el["tag"] == "div" and el["width"] == 3000 for el in overflow["wide"]), overflow


def test_readme_pictures_are_made_from_a_report(finished_run, tmp_path):
    """docs/pictures.py, on a rendered report: the answer box as the browser draws it, and the accuracy figure."""
    import importlib.util

    workdir, _ = finished_run
    browser_paths()  # fails with the one line above where Chromium is missing
    spec = importlib.util.spec_from_file_location("pictures", Path(__file__).resolve().parents[1] / "docs" / "pictures.py")
    pictures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pictures)
    answer, figure = pictures.make_pictures(workdir / "reports" / "ci", tmp_path)
    height, width = matplotlib.image.imread(answer).shape[:2]
    assert 600 < width <= pictures.WIDTH and 100 < height  # the box, not the window
    assert figure.read_bytes() == (workdir / "reports" / "ci" / "figures" / "accuracy_vs_n.png").read_bytes()
