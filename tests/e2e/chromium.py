"""Debian's Chromium driven by Selenium through Debian's chromedriver: what the console's browser tests
share (the fixtures that start it are in conftest.py). Nothing is downloaded at test time."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / ".local" / "screenshots"
# No network beyond the console: nothing of Chromium's own (updates, sync, field trials) may reach out.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
DESKTOP = (1280, 900)
PHONE = (390, 844)
LIVE = 60  # seconds a live page may take to show a change (it polls every 2 s; the bound only ends a failing test)
MARK = "return window.consoleTestMark"  # set on a page; still there only if the page was never reloaded
LIVE_FETCHES = "return performance.getEntriesByType('resource').filter(r => r.initiatorType === 'fetch').length"


def viewport(driver, size: tuple[int, int]) -> None:
    width, height = size
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


class Console:
    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url.rstrip("/")

    def open(self, path: str) -> None:
        self.driver.get(f"{self.url}{path}")

    def find(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def click_button(self, within: str, label: str) -> None:
        """Click the button labelled `label` inside `within`, found again if a live refresh replaced it."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        for _ in range(5):
            try:
                self.find(within).find_element(By.XPATH, f".//button[normalize-space()='{label}']").click()
                return
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"the button {label!r} in {within} kept being replaced")

    # Read in one script: a live fragment may replace the element between a find and a read
    def text(self, selector: str) -> str:
        return str(self.driver.execute_script("return document.querySelector(arguments[0])?.innerText.trim() ?? ''", selector))

    def attribute(self, selector: str, name: str) -> str | None:
        """The attribute (a property first: an href read resolved, as the browser follows it)."""
        script = "const e = document.querySelector(arguments[0]); return e ? (e[arguments[1]] ?? e.getAttribute(arguments[1])) : null"
        found = self.driver.execute_script(script, selector, name)
        return None if found is None else str(found)

    def mark(self) -> None:
        self.driver.execute_script("window.consoleTestMark = 'not reloaded'")

    def was_not_reloaded(self) -> bool:
        return self.driver.execute_script(MARK) == "not reloaded"

    def errors(self) -> list[str]:
        """What went wrong on the page: the browser's console errors (CSP violations, failed requests, script
        errors) and any error flash shown."""
        logged = [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        flashes = self.driver.execute_script(
            "return [...document.querySelectorAll('.flash.error, .api-error')].filter(e => e.getClientRects().length).map(e => e.innerText)"
        )
        return logged + [f"error flash: {text}" for text in flashes]

    def screenshots(self, name: str) -> list[str]:
        """Screenshots at desktop and phone size; returns what does not fit the phone's width."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        overflow: list[str] = []
        for size in (DESKTOP, PHONE):
            viewport(self.driver, size)
            # the layout viewport (a phone zooms out when the page is wider than it, which WIDER_THAN_SCREEN reports)
            width = self.driver.execute_script("return document.documentElement.clientWidth")
            assert width <= size[0], f"the viewport is {width} px wide, not {size[0]}"
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}-{size[0]}x{size[1]}.png"))
            if size == PHONE:
                overflow = self.driver.execute_script(WIDER_THAN_SCREEN)
        viewport(self.driver, DESKTOP)
        return overflow


# The elements that stick out past the right edge at phone width (the page then scrolls sideways). An element
# inside a box that scrolls on its own (overflow-x: auto) is fine: only that box scrolls.
WIDER_THAN_SCREEN = """
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth <= width + 1) return [];
const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
  const x = getComputedStyle(p).overflowX; if (x === 'auto' || x === 'scroll' || x === 'hidden') return true; } return false; };
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const box = el.getBoundingClientRect();
  if (box.right > width + 1 && box.width > 0 && !scrolls(el)) {
    const classes = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
    out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${classes} to ${Math.round(box.right)} px`);
  }
}
return out.slice(0, 10);
"""
