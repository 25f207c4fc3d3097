"""The README's pictures, made from a rendered report: its first answer box, and its accuracy-against-n figure;
and, for "Watching a sweep", the status of a sweep and MLflow's view of its runs.

    python docs/pictures.py [REPORT_FOLDER] [OUT_FOLDER]
    python docs/pictures.py --status STATUS.txt [OUT_FOLDER]
    python docs/pictures.py --mlflow URL EXPERIMENT_ID [OUT_FOLDER]

REPORT_FOLDER defaults to reports/digits-from-fashion (the default experiment's report, after
`make report`), OUT_FOLDER to docs/. Writes answer.png (a screenshot of the answer box in
headless Chromium at laptop width) and accuracy_vs_n.png (the report's own figure); with
--status, status.png (the text `python -m epochbench status` printed, as a terminal shows it);
with --mlflow, mlflow_runs.png (the experiment's runs in the MLflow UI at URL). Needs
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


def status_picture(text: str, out: Path) -> Path:
    """out/status.png: the status text in a terminal's colours and monospace font, drawn by headless Chromium."""
    import html

    out.mkdir(parents=True, exist_ok=True)
    picture = out / "status.png"
    width = max(len(line) for line in text.splitlines()) * 9 + 60
    page = out / ".status.html"
    page.write_text('<!DOCTYPE html><html><body style="margin:0;background:#1e1e1e">'
                    '<pre id="terminal" style="display:inline-block;margin:0;padding:16px 20px;color:#e8e8e8;'
                    'background:#1e1e1e;font:15px/1.35 \'DejaVu Sans Mono\',monospace">'
                    f"$ python -m epochbench status\n{html.escape(text)}</pre></body></html>")
    driver = chromium(width=max(width, 600))
    try:
        from selenium.webdriver.common.by import By

        driver.get(page.resolve().as_uri())
        with atomic_path(picture) as tmp:
            Path(tmp).write_bytes(driver.find_element(By.ID, "terminal").screenshot_as_png)
    finally:
        driver.quit()
        page.unlink(missing_ok=True)
    return picture


def mlflow_picture(url: str, experiment_id: str, out: Path, expected=(), timeout: float = 60) -> Path:
    """out/mlflow_runs.png: the MLflow UI's runs view of an experiment, once every name in `expected` shows."""
    import contextlib
    import time

    out.mkdir(parents=True, exist_ok=True)
    picture = out / "mlflow_runs.png"
    driver = chromium(1600, 720)
    try:
        # The runs table itself: MLflow 3 opens an experiment on its GenAI overview otherwise.
        driver.get(f"{url.rstrip('/')}/#/experiments/{experiment_id}/runs")
        deadline = time.monotonic() + timeout
        # The UI is a single-page app: its rows appear after the page's load event.
        while not all(name in driver.find_element("tag name", "body").text for name in expected or ["Run Name"]):
            if time.monotonic() > deadline:
                raise SystemExit(f"docs/pictures.py: {url}: runs {list(expected)} not shown within {timeout:g} s")
            time.sleep(1)
        time.sleep(1)  # let the last rows settle
        # MLflow 3.17 opens an assistant panel beside the table: closed, where its close button is found.
        for button in driver.find_elements("css selector", "button[aria-label='Close'], button[aria-label='close']"):
            with contextlib.suppress(Exception):
                button.click()
        time.sleep(0.5)
        with atomic_path(picture) as tmp:
            Path(tmp).write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.quit()
    return picture


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--status"]:
        print(status_picture(Path(arguments[1]).read_text(), Path(arguments[2]) if len(arguments) > 2 else ROOT / "docs"))
        sys.exit()
    if arguments[:1] == ["--mlflow"]:
        print(mlflow_picture(arguments[1], arguments[2], Path(arguments[3]) if len(arguments) > 3 else ROOT / "docs"))
        sys.exit()
    report = Path(arguments[0]) if arguments else ROOT / "reports" / "digits-from-fashion"
    out = Path(arguments[1]) if len(arguments) > 1 else ROOT / "docs"
    for path in make_pictures(report, out):
        print(path)
