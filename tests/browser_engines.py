"""Three browser engines behind one small interface, each driven by what works offline with Debian's builds.

- Chromium: Playwright with Debian's `chromium` (Playwright's own browser builds cannot be downloaded here).
- Firefox ESR: WebDriver BiDi, which Firefox speaks natively on `--remote-debugging-port`. Debian ships no
  geckodriver and Playwright drives only its own patched Firefox, so a small BiDi client over `websockets`
  is the one driver that works offline with `firefox-esr`.
- WebKit: Debian's `WebKitWebDriver` (classic W3C WebDriver over HTTP) starting `MiniBrowser --automation`
  under Xvfb.

A test needs little: open a URL in a fresh profile, evaluate JavaScript, wait for a condition. Every value
crosses as JSON (`JSON.stringify` in the page), so the three protocols' value serialisations never matter.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import requests

FIREFOX = os.environ.get("FIREFOX", shutil.which("firefox-esr") or "/usr/bin/firefox-esr")
WEBKIT_DRIVER = os.environ.get("WEBKIT_DRIVER", shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver")
MINIBROWSER = os.environ.get("MINIBROWSER", "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _expression(body: str, args: tuple[Any, ...]) -> str:
    """The function body, called with `args`, its result as a JSON string (undefined becomes null)."""
    return f"JSON.stringify((function () {{ {body} }}).apply(null, {json.dumps(list(args))}) ?? null)"


class Tab(Protocol):
    def goto(self, url: str) -> None: ...

    def evaluate_json(self, expression: str) -> str: ...

    def close(self) -> None: ...


class Page:
    """What tests use: `js` runs a function body (`arguments` are the extra values) and returns its result."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab

    def goto(self, url: str) -> None:
        self.tab.goto(url)

    def js(self, body: str, *args: Any) -> Any:
        return json.loads(self.tab.evaluate_json(_expression(body, args)))

    def wait(self, body: str, *args: Any, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while True:
            try:
                value = self.js(body, *args)
            except Exception as exc:  # a navigation in progress: the page's realm is being replaced
                value, error = None, exc
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout} s: {body} (last error: {error!r})")
            time.sleep(0.1)


class Engine(Protocol):
    name: str

    def new_tab(self) -> Tab: ...

    def stop(self) -> None: ...


# ------------------------------------------------------------------------------------------------ Chromium


class PlaywrightTab:
    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="domcontentloaded")

    def evaluate_json(self, expression: str) -> str:
        return self.page.evaluate(expression)

    def close(self) -> None:
        self.context.close()


class Chromium:
    name = "chromium"

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def new_tab(self) -> Tab:
        return PlaywrightTab(self.browser)

    def stop(self) -> None:
        pass  # the session's Playwright browser is closed by its own fixture


# ------------------------------------------------------------------------------------------------- Firefox


class BiDi:
    """A WebDriver BiDi connection: commands by id, events skipped (no test subscribes to any)."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.stack = ExitStack()
        self.socket = self.stack.enter_context(connect(url, max_size=None, open_timeout=30))
        self.ids = itertools.count(1)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        command_id = next(self.ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") != command_id:
                continue
            if message.get("type") == "error":
                raise RuntimeError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def close(self) -> None:
        self.stack.close()


class FirefoxTab:
    def __init__(self, bidi: BiDi) -> None:
        self.bidi = bidi
        self.user_context = bidi.call("browser.createUserContext")["userContext"]  # its own storage
        self.context = bidi.call("browsingContext.create", type="tab", userContext=self.user_context)["context"]

    def goto(self, url: str) -> None:
        self.bidi.call("browsingContext.navigate", context=self.context, url=url, wait="interactive")

    def evaluate_json(self, expression: str) -> str:
        result = self.bidi.call(
            "script.evaluate", expression=expression, target={"context": self.context}, awaitPromise=False
        )
        if result.get("type") == "exception":
            raise RuntimeError(result["exceptionDetails"].get("text"))
        return result["result"].get("value", "null")

    def close(self) -> None:
        self.bidi.call("browsingContext.close", context=self.context)
        self.bidi.call("browser.removeUserContext", userContext=self.user_context)


# Quiet and offline: no first-run pages, updates, telemetry or remote settings calling out.
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.disabledForTesting": True,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "network.proxy.type": 0,
    "network.dns.disablePrefetch": True,
    "dom.push.connection.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.region.network.url": "",
    "toolkit.telemetry.server": "",
    "browser.tabs.remote.autostart": True,
}


class Firefox:
    name = "firefox"

    def __init__(self, log_dir: Path) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="ff-profile-"))
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items())
        )
        port = _free_port()
        log = (log_dir / "firefox.log").open("wb")
        self.process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(self.profile), f"--remote-debugging-port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.bidi = BiDi(f"ws://127.0.0.1:{port}/session")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.3)
        self.bidi.call("session.new", capabilities={"alwaysMatch": {"acceptInsecureCerts": True}})

    def new_tab(self) -> Tab:
        return FirefoxTab(self.bidi)

    def stop(self) -> None:
        with suppress(Exception):
            self.bidi.call("browser.close", timeout=10)
        _end(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)


# -------------------------------------------------------------------------------------------------- WebKit


class WebKitTab:
    """One WebDriver session: a MiniBrowser of its own, with an ephemeral website data store."""

    def __init__(self, driver_url: str) -> None:
        self.driver_url = driver_url
        capabilities = {
            "browserName": "MiniBrowser",
            "pageLoadStrategy": "normal",
            "webkitgtk:browserOptions": {"binary": MINIBROWSER, "args": ["--automation"]},
        }
        answer = requests.post(
            f"{driver_url}/session", json={"capabilities": {"alwaysMatch": capabilities}}, timeout=60
        ).json()["value"]
        if "sessionId" not in answer:
            raise RuntimeError(f"WebKitWebDriver: {answer}")
        self.session = f"{driver_url}/session/{answer['sessionId']}"

    def goto(self, url: str) -> None:
        requests.post(f"{self.session}/url", json={"url": url}, timeout=60).raise_for_status()

    def evaluate_json(self, expression: str) -> str:
        answer = requests.post(
            f"{self.session}/execute/sync", json={"script": f"return {expression};", "args": []}, timeout=60
        ).json()["value"]
        if isinstance(answer, dict) and "error" in answer:
            raise RuntimeError(f"{answer['error']}: {answer.get('message')}")
        return answer

    def close(self) -> None:
        requests.delete(self.session, timeout=30)


class WebKit:
    name = "webkit"

    def __init__(self, log_dir: Path) -> None:
        self.display = f":{_free_display()}"
        self.xvfb = subprocess.Popen(
            [XVFB, self.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = _free_port()
        log = (log_dir / "webkitwebdriver.log").open("wb")
        env = {**os.environ, "DISPLAY": self.display, "WEBKIT_DISABLE_COMPOSITING_MODE": "1"}
        self.driver = subprocess.Popen(
            [WEBKIT_DRIVER, f"--port={port}", "--host=127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.url}/status", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.2)

    def new_tab(self) -> Tab:
        return WebKitTab(self.url)

    def stop(self) -> None:
        _end(self.driver)
        _end(self.xvfb)


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display")


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def available(name: str) -> str | None:
    """Why an engine cannot run here, or None when it can."""
    if name == "firefox" and not Path(FIREFOX).exists():
        return f"{FIREFOX} missing (scripts/setup --browser installs firefox-esr)"
    if name == "webkit":
        for path in (WEBKIT_DRIVER, MINIBROWSER, XVFB):
            if not Path(path).exists():
                return f"{path} missing (scripts/setup --browser installs webkit2gtk-driver and xvfb)"
    return None


@contextmanager
def page_of(engine: Engine) -> Iterator[Page]:
    tab = engine.new_tab()
    try:
        yield Page(tab)
    finally:
        with suppress(Exception):
            tab.close()
