"""Time to the LoyJoy chat's boot with the GTM template, as a ratio to LoyJoy's own snippet, per engine and per
state of the collector, both measured in the same run, the same browser and the same tab.

LoyJoy's own snippet is its documented JavaScript-API form: the loader (widget.js), then LoyJoy('boot', …) with
the seed's dataLayer listener. The template is fired by tests/gtm_sandbox/sandbox.js at parse time, as GTM fires
a tag on All Pages; it loads the same loader itself. The loader is the demo's stand-in, answered after
BENCH_LOADER_DELAY seconds (default 0.5) as from a CDN. Time to boot: performance.now() when LoyJoy('boot') ran.
The collector's front (tests/gtm_sandbox/pages.py) is up (the built script, events answered 204), refused,
hanging, answering 500, answering only 10 s after a cold start, or serving a broken script.

Runs BENCH_RUNS (default 7) pairs per cell, own then template, alternating in one tab; prints the medians and
their ratio (goal: below 1.2 in every cell). Engines: Chromium (Playwright with Debian's build), Firefox ESR
(WebDriver BiDi), WebKit (WebKitWebDriver and MiniBrowser under Xvfb); BENCH_ENGINES narrows them.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_engines import Chromium, Engine, Firefox, Page, available, page_of  # noqa: E402
from tests.gtm_sandbox.pages import Front, PromptWebKit, Shop, boot_ms  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
LOADER_DELAY = float(os.environ.get("BENCH_LOADER_DELAY", "0.5"))
ENGINES = os.environ.get("BENCH_ENGINES", "chromium,firefox,webkit").split(",")
MODES = ("up", "refused", "hang", "500", "cold", "broken")
LOGS = Path(os.environ.get("TEST_LOG_DIR", ROOT / ".local" / "test-logs"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def fresh(page: Page, url: str) -> float:
    """Boot time of one page load; a new document each time (the previous one's storage kept, as for a visitor)."""
    page.goto(url)
    return boot_ms(page)


def measure(page: Page, shop: Shop, front: Front, mode: str) -> dict[str, Any]:
    own: list[float] = []
    tag: list[float] = []
    if mode == "refused":
        front.stop()
    for _ in range(RUNS):
        bot = "b" + uuid.uuid4().hex[:8]
        if mode not in ("up", "refused"):
            front.mode = mode  # `cold` starts cold again for each page
        own.append(fresh(page, shop.own(bot)))
        tag.append(fresh(page, shop.tag(front, data={"bot": bot, "consent": "none"})))
        assert page.js("return gtmOutcome.result") == "success"
    front.mode = "up"  # let held requests go
    if mode == "refused":
        front.start()
    own_ms, tag_ms = statistics.median(own), statistics.median(tag)
    return {"own_ms": round(own_ms), "tag_ms": round(tag_ms), "ratio": round(tag_ms / own_ms, 3)}


def engine_of(name: str, stack: ExitStack) -> Engine:
    LOGS.mkdir(parents=True, exist_ok=True)
    if name == "chromium":
        from playwright.sync_api import sync_playwright

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        stack.callback(browser.close)
        return Chromium(browser)
    running: Engine = Firefox(LOGS) if name == "firefox" else PromptWebKit(LOGS)
    stack.callback(running.stop)
    return running


def main() -> None:
    results: dict[str, dict[str, Any]] = {}
    shop = Shop(loader_delay=LOADER_DELAY).start()
    front = Front(None).start()
    started = time.monotonic()
    try:
        for name in ENGINES:
            missing = available(name)
            if missing:
                print(f"{name}: skipped ({missing})")
                continue
            with ExitStack() as stack:
                engine = engine_of(name, stack)
                with page_of(engine) as page:
                    fresh(page, shop.own("warm-up"))  # the first page of a browser pays for its start
                    results[name] = {mode: measure(page, shop, front, mode) for mode in MODES}
    finally:
        front.mode = "up"
        front.stop()
        shop.stop()
    print(
        f"\nTime to LoyJoy's boot, GTM template / LoyJoy's own snippet (median of {RUNS} each, loader after "
        f"{LOADER_DELAY} s), {time.monotonic() - started:.0f} s\n"
    )
    print(f"{'collector':<10}" + "".join(f"{name:>26}" for name in results))
    for mode in MODES:
        cells = "".join(
            f"{r[mode]['ratio']:>8.2f} ({r[mode]['tag_ms']:>5} / {r[mode]['own_ms']:>5} ms)" for r in results.values()
        )
        print(f"{mode:<10}{cells}")
    worst = max(r[mode]["ratio"] for r in results.values() for mode in MODES)
    print(f"\nworst ratio {worst:.2f} (goal < 1.2)")
    (LOGS / "gtm-boot.json").write_text(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
