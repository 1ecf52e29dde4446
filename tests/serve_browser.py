"""Driving the ``babelseg serve`` page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``) through selenium; used by the browser test and by
``scripts/serve_screenshot.py``. Never downloads a browser or a driver."""

from __future__ import annotations

import shutil
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WAIT_S = 90.0


def missing_browser() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in the test extra)"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no Chromium on PATH (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


class ServePage:
    """The page in a headless Chromium window of ``width x height`` CSS pixels."""

    def __init__(self, *, width: int = 1400, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={width},{height}",
            "--force-device-scale-factor=1",
        ):
            options.add_argument(flag)
        service = Service(executable_path=shutil.which("chromedriver"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(WAIT_S)

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> ServePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_for(self, condition, what: str) -> None:
        """Wait (bounded) until ``condition(driver)`` is truthy; fail naming ``what``."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, WAIT_S, poll_frequency=0.2).until(
            condition, message=f"timed out waiting for {what}; status: {self.status()!r}"
        )

    def state(self) -> str | None:
        return self.driver.execute_script("return document.body.dataset.state || null;")

    def status(self) -> str:
        return self.driver.execute_script("return document.getElementById('status').textContent;")

    # ------------------------------------------------------------------ actions
    def open(self, base: str) -> None:
        self.driver.get(base + "/")
        self.wait_for(lambda d: self.state() == "ready", "the page to load the model info")

    def choose_image(self, path: Path) -> None:
        self.find("#file-input").send_keys(str(Path(path).resolve()))

    def drop_image(self, path: Path) -> None:
        """Drop a file on the drop zone, as dragging it from a file manager does."""
        import base64

        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        self.driver.execute_script(
            "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
            "const transfer = new DataTransfer();"
            "transfer.items.add(new File([bytes], arguments[1], {type: 'image/png'}));"
            "const zone = document.getElementById('drop-zone');"
            "zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true,"
            " cancelable: true}));"
            "zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true,"
            " cancelable: true}));",
            data,
            Path(path).name,
        )

    def type_labels(self, text: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find("#dataset")).select_by_value("")
        box = self.find("#labels")
        box.clear()
        box.send_keys(text)

    def pick_dataset(self, name: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find("#dataset")).select_by_value(name)

    def segment(self, *, expect: str = "done") -> None:
        self.find("#segment").click()
        self.wait_for(lambda d: self.state() in ("done", "error"), "the prediction")
        assert self.state() == expect, f"page state {self.state()}: {self.status()}"

    def legend(self) -> list[str]:
        return [li.find_element("css selector", ".name").text for li in self.find_all("#legend li")]

    def hover(self, fx: float, fy: float) -> list[list[str]]:
        """Move the pointer to the fractions ``(fx, fy)`` of the image; the tooltip's rows."""
        from selenium.webdriver.common.action_chains import ActionChains

        photo = self.find("#photo")
        size = photo.size
        dx = round((fx - 0.5) * size["width"])
        dy = round((fy - 0.5) * size["height"])
        ActionChains(self.driver).move_to_element_with_offset(photo, dx, dy).perform()
        self.wait_for(
            lambda d: (
                self.find("#tooltip").is_displayed() and len(self.find_all("#tooltip tr")) > 1
            ),
            "the hover tooltip",
        )
        rows = self.find_all("#tooltip tr")
        return [[td.text for td in row.find_elements("css selector", "td")] for row in rows]

    def show_heat_map(self, legend_position: int) -> str:
        """Click a legend entry; returns the view title once the heat map is shown."""
        self.find_all("#legend li")[legend_position].click()
        self.wait_for(
            lambda d: (
                self.find("#heatmap").is_displayed()
                and d.execute_script("return document.getElementById('heatmap').naturalWidth > 0;")
            ),
            "the heat map",
        )
        return self.find("#view-title").text

    def show_overlay(self) -> None:
        self.find("#show-overlay").click()
        self.wait_for(lambda d: self.find("#overlay").is_displayed(), "the overlay")

    def image_sizes(self) -> dict[str, int]:
        """Natural sizes of the shown photo and overlay."""
        return self.driver.execute_script(
            "const p = document.getElementById('photo'), o = document.getElementById('overlay');"
            "return {photo_w: p.naturalWidth, photo_h: p.naturalHeight,"
            " overlay_w: o.naturalWidth, overlay_h: o.naturalHeight};"
        )

    def screenshot(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"could not save {path}"
        return path
