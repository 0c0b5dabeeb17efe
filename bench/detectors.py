"""The privacy detectors' cost per KB, worst case against typical chat traffic, and the gate's cost per row.

Every figure has its baseline in the same run: the adversarial corpus (`detector_corpus.py`) is measured
against typical chat strings, with the cache of clean texts off for both (it would flatter typical traffic,
which repeats); the gate's cost per row is a realistic row (unique ids, repeating labels) sealed with the
detectors and without them. Prints a table and exits non-zero if a worst case passes 5x typical per KB.

    .venv/bin/python bench/detectors.py            # 64 KiB adversarial texts (and two of 512 KiB)
    BENCH_DETECTOR_KB=16 .venv/bin/python bench/detectors.py
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.detector_corpus import adversarial_texts, typical_texts
from loyjoy_collector.privacy import values
from loyjoy_collector.privacy.gate import Gate
from loyjoy_collector.privacy.keys import CONTAINER_KEYS, Scrubber
from loyjoy_collector.privacy.tally import Tally

BOUND = 5.0
SCRUBBER = Scrubber(b"bench-key")
KEYS = SCRUBBER.kept_keys - CONTAINER_KEYS


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings: noise only ever adds time."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def us_per_kb(texts: list[str], strict: bool, runs: int = 5) -> float:
    size = sum(len(text.encode()) for text in texts)

    def work() -> None:
        for text in texts:
            values._CLEAN.clear()
            values.scrub_text(text, Tally(), KEYS, strict)

    return best_of(runs, work) * 1e6 / (size / 1024)


def detector_table(kb: int) -> tuple[tuple[float, float], list[tuple[str, int, float, float]]]:
    """(typical plain, typical strict) and, per adversarial text, (name, bytes, plain, strict), all in us/KB."""
    typical = typical_texts() * 10
    typical_cost = (us_per_kb(typical, False), us_per_kb(typical, True))
    rows = []
    for name, text in adversarial_texts(kb * 1024).items():
        runs = 2 if len(text) > 100_000 else 3
        rows.append((name, len(text.encode()), us_per_kb([text], False, runs), us_per_kb([text], True, runs)))
    return typical_cost, rows


def gate_per_row(count: int = 2000) -> tuple[float, float, float]:
    """Seal `count` realistic rows: with the detectors (cache of clean texts on and off) and without."""
    from loyjoy_collector.protocol import LoyJoyEvent
    from loyjoy_collector.rows import RequestContext, event_row
    from loyjoy_collector.settings import Settings

    user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0"
    context = RequestContext(
        datetime.now(UTC),
        "POST",
        "/",
        "",
        "application/json",
        "https://shop.example.com",
        user_agent,
        "203.0.113.9",
        "de-DE,de;q=0.9",
    )
    labels = ["Antwort A", "Antwort B", "Ja, gerne!", "Zum Produkt", "Weiter"]
    events = []
    for index in range(count):
        raw = {
            "event": "quiz_answered",
            "event_id": str(uuid.uuid4()),
            "client_id": str(uuid.uuid4()),
            "session_id": f"s-{1732550400000 + index}",
            "ts": "2026-12-02T03:00:00Z",
            "page_location": f"https://shop.example.com/produkte/{index % 40}?utm_source=newsletter&page=2",
            "page_title": "Kaffeemaschinen & Vollautomaten \u2013 Angebote der Woche",
            "detail": {
                "bot_id": "b-2f1c",
                "process_id": "p-88a1",
                "process_name": "Gewinnspiel Herbst",
                "label": labels[index % len(labels)],
                "score": index % 10,
            },
        }
        events.append((LoyJoyEvent.model_validate(raw), raw))
    settings, gate = Settings(), Gate(SCRUBBER)

    class NoDetectors(Gate):
        def text(self, value: str, tally: Tally, strict: bool = False, links: bool = True) -> str:
            return value

    bare = NoDetectors(SCRUBBER)

    def run(with_gate: Gate, cache: bool) -> Callable[[], None]:
        def work() -> None:
            for event, raw in events:
                if not cache:
                    values._CLEAN.clear()
                event_row(event, raw, context, settings, SCRUBBER, "loyjoy", with_gate)

        return work

    run(gate, True)()  # warm: the cache of clean texts fills as it would in a running instance
    cached = best_of(3, run(gate, True)) / count
    uncached = best_of(3, run(gate, False)) / count
    none = best_of(3, run(bare, True)) / count
    return (cached - none) * 1e6, (uncached - none) * 1e6, none * 1e6


def main() -> int:
    kb = int(os.environ.get("BENCH_DETECTOR_KB", "64"))
    (typical_plain, typical_strict), rows = detector_table(kb)
    print(f"typical chat strings: {typical_plain:.1f} us/KB plain, {typical_strict:.1f} us/KB strict (unparsed bodies)")
    print(f"{'adversarial text':22} {'bytes':>8} {'plain us/KB':>12} {'strict us/KB':>13} {'x typical':>10}")
    worst = 0.0
    for name, size, plain, strict in rows:
        ratio = max(plain / typical_plain, strict / typical_strict)
        worst = max(worst, ratio)
        print(f"{name:22} {size:8} {plain:12.1f} {strict:13.1f} {ratio:10.2f}")
    print(f"worst case: {worst:.2f}x typical per KB (bound {BOUND}x)")
    cached, uncached, bare = gate_per_row()
    print(
        f"gate per row: {cached:.0f} us with the cache of clean texts, {uncached:.0f} us without; "
        f"the row without detectors {bare:.0f} us"
    )
    return 0 if worst <= BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
