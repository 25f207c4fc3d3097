"""The README's pictures, made from a rendered report: its first answer box, and its accuracy-against-n figure.

    python docs/pictures.py [REPORT_FOLDER] [OUT_FOLDER]

REPORT_FOLDER defaults to reports/digits-from-fashion (the default experiment's report, after
`make report`), OUT_FOLDER to docs/. Writes answer.png (a screenshot of the answer box in
headless Chromium at laptop width) and accuracy_vs_n.png (the report's own figure). Needs
selenium and Debian's chromium and chromium-driver, which `make setup` installs.
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench.io import atomic_path  # noqa: E402

WIDTH, HEIGHT = 1100, 900


def chromium(width: int = WIDTH, height: int = HEIGHT):
    """A headless Chromium that reaches for nothing on the network (the report is one offline file)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise SystemExit("docs/pictures.py: needs chromium and chromedriver (make setup installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def make_pictures(report: Path, out: Path) -> list:
    """Write out/answer.png and out/accuracy_vs_n.png from the report folder `report`; return their paths."""
    from selenium.webdriver.common.by import By

    page = report / "index.html"
    if not page.is_file():
        raise SystemExit(f"docs/pictures.py: {page}: no report there (run `make report` first)")
    out.mkdir(parents=True, exist_ok=True)
    answer, figure = out / "answer.png", out / "accuracy_vs_n.png"
    driver = chromium()
    try:
        driver.get(page.resolve().as_uri())
        box = driver.find_element(By.CSS_SELECTOR, ".answer")
        with atomic_path(answer) as tmp:
            Path(tmp).write_bytes(box.screenshot_as_png)
    finally:
        driver.quit()
    with atomic_path(figure) as tmp:
        shutil.copyfile(report / "figures" / "accuracy_vs_n.png", tmp)
    return [answer, figure]


if __name__ == "__main__":
    arguments = sys.argv[1:]
    report = Path(arguments[0]) if arguments else ROOT / "reports" / "digits-from-fashion"
    out = Path(arguments[1]) if len(arguments) > 1 else ROOT / "docs"
    for path in make_pictures(report, out):
        print(path)
