"""The system Chromium, headless, driven by selenium through the system chromedriver.

Nothing is downloaded: the browser and its driver are Debian's ``chromium`` and
``chromium-driver`` (``make tools``), and selenium is told where both are, so
its own manager never looks for another.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


class Browser:
    """One headless Chromium with a fresh profile, and the waits the console tests need."""

    def __init__(self, base_url: str, profile_dir: Path) -> None:
        chromium = shutil.which("chromium")
        chromedriver = shutil.which("chromedriver")
        if chromium is None or chromedriver is None:
            pytest.fail("chromium and chromium-driver are needed: make tools installs them")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=Service(chromedriver))
        self.driver.set_page_load_timeout(30)
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url)

    @property
    def text(self) -> str:
        return str(self.find("body").text)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def sign_in(self, key: str) -> None:
        self.open("/ui/jobs")
        assert self.path.startswith("/ui/login"), self.path
        self.find("#key").send_keys(key)
        self.find("form button[type=submit]").click()
        self.wait_until(lambda: self.path.startswith("/ui/jobs"), "the jobs list after signing in")

    def wait_until(
        self, condition: Callable[[], bool], what: str, seconds: float = 30.0, reload: bool = False
    ) -> None:
        """Wait for ``condition`` with a deadline; ``reload`` the page between looks."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if condition():
                    return
            except (NoSuchElementException, StaleElementReferenceException):
                pass  # the page is (re)loading
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {seconds}s: {what}; page:\n{self.text}")
            time.sleep(0.1)
            if reload:
                self.driver.refresh()

    def screenshot(self, path: Path) -> None:
        """The whole page, however long (the window is stretched to it first)."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(int(height), 600))
        assert self.driver.save_screenshot(str(path)), path
        self.driver.set_window_size(1280, 900)

    def quit(self) -> None:
        self.driver.quit()


BrowserFactory = Callable[[str], Browser]


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserFactory]:
    """Start a browser for a base URL; every one started is closed at the end.

    Selenium's debug log prints every command, the keys typed into the
    sign-in form too: the secret scan would rightly count the API key as leaked.
    """
    quiet = logging.getLogger("selenium.webdriver.remote.remote_connection")
    level = quiet.level
    quiet.setLevel(logging.INFO)
    started: list[Browser] = []

    def start(base_url: str) -> Browser:
        started.append(Browser(base_url, tmp_path_factory.mktemp("chromium-profile")))
        return started[-1]

    yield start
    for one in started:
        one.quit()
    quiet.setLevel(level)
