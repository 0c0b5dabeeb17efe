"""Peak memory of the function's worker under eight concurrent maximum-size requests, per protocol.

    .venv/bin/python bench/memory.py            # BENCH_CONCURRENT=8 BENCH_ROUNDS=3 by default

For each protocol a fresh function (functions-framework on functions/main.py, THREADS=8, the local BigQuery, as
the tests start it) is warmed up with one small request of that protocol (so lazy imports and clients are
loaded), its worker's idle RSS taken as the baseline, then BENCH_ROUNDS rounds of BENCH_CONCURRENT requests at
once, each a body just under MAX_BODY_BYTES (512 KiB). The worker is the gunicorn process forked by the
functions-framework process (its only child); its peak is VmHWM from /proc/<pid>/status, reset before the burst
(`echo 5 > /proc/<pid>/clear_refs`) and cross-checked by sampling VmRSS every 2 ms. The container also holds
the functions-framework process (the gunicorn arbiter), printed once; Cloud Run counts both (and /tmp) against
the instance's memory. Not part of CI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import requests

from loyjoy_collector.ops.cli import local_env, start_function, start_local_bigquery

ROOT = Path(__file__).resolve().parent.parent
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MAX_BODY = int(os.environ.get("MAX_BODY_BYTES", str(512 * 1024)))
BODY = MAX_BODY - 512  # just under the limit: read, parsed and processed in full
ORIGIN = "https://shop.example.com"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
WORDS = "Ja gerne, ich möchte den Newsletter mit Angeboten für Laufschuhe und Trailrunning erhalten bitte "


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def text(length: int) -> str:
    """Ordinary chat text (what a free-text answer looks like), `length` characters."""
    return (WORDS * (length // len(WORDS) + 1))[:length]


def fit(make: Callable[[int], bytes], target: int = BODY) -> bytes:
    """The largest body `make(n)` at most `target` bytes (n the size of its variable part)."""
    low, high = 0, target
    while low < high:
        mid = (low + high + 1) // 2
        if len(make(mid)) <= target:
            low = mid
        else:
            high = mid - 1
    return make(low)


def batch(n: int) -> bytes:
    events = [
        {
            "event": "sign_up",
            "client_id": f"c-{i}",
            "session_id": "s-1",
            "page_location": "https://shop.example.com/?utm_source=bench",
            "detail": {"bot_id": "bench-memory", "process_name": "Bench", "label": text(n // 100)},
        }
        for i in range(100)
    ]
    # Nothing shared at the top: shared fields count against the limit once per event they are copied into.
    return json.dumps({"events": events}).encode()


def shared(n: int) -> bytes:
    events = [{"event": "open", "client_id": f"c-{i}"} for i in range(100)]
    return json.dumps({"detail": {"bot_id": "bench-memory", "label": text(n)}, "events": events}).encode()


def unparseable(n: int) -> bytes:
    return ("{" + text(n)).encode()


def data_array(n: int) -> bytes:
    push = {
        "event_name": "loyjoy",
        "gaEventCategory": "loyjoy",
        "gaEventAction": "Bench",
        "gaEventLabel": "newsletter_opt_in",
        "bot_id": "bench-memory",
        "client_id": "dc-1",
        "page_location": "https://shop.example.com/landing",
    }
    return json.dumps([push | {"answer": text(n // 100)} for _ in range(100)]).encode()


def data_form(n: int) -> bytes:
    fields = {"event_name": "loyjoy", "gaEventCategory": "loyjoy", "gaEventLabel": "sign_up", "bot_id": "bench-memory"}
    fields |= {f"field_{i}": text(n // 400) for i in range(400)}
    return urlencode(fields).encode()


def ga4_lines(n: int) -> bytes:
    line = {"en": "loyjoy", "ep.gaEventCategory": "loyjoy", "ep.gaEventLabel": "sign_up", "ep.bot_id": "bench-memory"}
    return "\n".join(urlencode(line | {"ep.answer": text(n // 100)}) for _ in range(100)).encode()


GA4_QUERY = "v=2&tid=G-BENCH&cid=1.2"
PROTOCOLS: list[tuple[str, str, str, Callable[[int], bytes], bytes, int]] = [
    # name, path, content type, body maker, a small warm-up body, target size of the body
    ("POST / JSON, 100 events, large labels", "/", "application/json", batch, batch(1000), BODY),
    # Refused 413 (shared_fields_too_large) by design: what the refusal of the amplification case costs.
    ("POST / JSON, 100 events, shared label", "/", "application/json", shared, batch(1000), BODY),
    ("POST / unparseable text", "/", "text/plain", unparseable, batch(1000), BODY),
    ("POST /data JSON array (100 pushes)", "/data", "text/plain;charset=UTF-8", data_array, data_array(1000), BODY),
    ("POST /data form (404 fields)", "/data", "application/x-www-form-urlencoded", data_form, data_form(4000), BODY),
    # The query's fields are shared by every line (and the query itself counts once more).
    (
        "POST /g/collect, 100 lines",
        f"/g/collect?{GA4_QUERY}",
        "text/plain;charset=UTF-8",
        ga4_lines,
        ga4_lines(1000),
        BODY - 101 * len(GA4_QUERY),
    ),
]


def status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def worker_of(parent: int, timeout: float = 10.0) -> int:
    """The gunicorn worker: the functions-framework process's child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = []
        for task in Path(f"/proc/{parent}/task").iterdir():
            children += (task / "children").read_text().split()
        if len(children) == 1:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError(f"no single worker under {parent}: {children}")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, status_kb(self.pid)["VmRSS"])
            time.sleep(0.002)


def burst(url: str, content_type: str, body: bytes) -> Counter[int]:
    barrier = threading.Barrier(CONCURRENT)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        answer = requests.post(
            url, data=body, headers={"Content-Type": content_type, "Origin": ORIGIN, "User-Agent": UA}, timeout=120
        )
        with lock:
            statuses[answer.status_code] += 1

    threads = [threading.Thread(target=send) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def terraform_memory_mib() -> tuple[str, int]:
    source = (ROOT / "infra/variables.tf").read_text()
    block = re.search(r'variable "memory" \{.*?default\s*=\s*"(\d+)(Mi|Gi)"', source, re.S)
    number, unit = int(block.group(1)), block.group(2)
    return f"{number}{unit}", number * (1024 if unit == "Gi" else 1)


def terraform_concurrency() -> int:
    source = (ROOT / "infra/variables.tf").read_text()
    return int(re.search(r'variable "concurrency" \{.*?default\s*=\s*(\d+)', source, re.S).group(1))


def main() -> int:
    logs = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    bq_port = free_port()
    bigquery = start_local_bigquery(bq_port, None, logs / "bigquery.log")
    env = local_env(bq_port, ORIGIN)
    env.update(THREADS=str(max(CONCURRENT, 8)), LOG_FORMAT="json", PII_HASH_KEY="bench-memory-key")
    # One address sends everything here: the per-client limits would answer 429 and skip the work measured.
    env.update(
        {f"RATE_LIMIT_{who}_{what}": "1000000" for who in ("ADDRESS", "CLIENT") for what in ("PER_SECOND", "BURST")}
    )
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )
    rows = []
    arbiter_kb = 0
    try:
        for name, path, content_type, make, warm_up, target in PROTOCOLS:
            body = fit(make, target)
            port = free_port()
            function = start_function(port, env, logs / "function.log")
            try:
                worker = worker_of(function.pid)
                url = f"http://127.0.0.1:{port}{path}"
                idle_kb = status_kb(worker)["VmRSS"]
                headers = {"Content-Type": content_type, "Origin": ORIGIN, "User-Agent": UA}
                warm = requests.post(url, data=warm_up, timeout=60, headers=headers)
                time.sleep(0.5)
                baseline_kb = status_kb(worker)["VmRSS"]
                arbiter_kb = max(arbiter_kb, status_kb(function.pid)["VmRSS"])
                Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
                sampler = Sampler(worker)
                sampler.start()
                statuses: Counter[int] = Counter()
                started = time.monotonic()
                for _ in range(ROUNDS):
                    statuses += burst(url, content_type, body)
                seconds = time.monotonic() - started
                sampler.done.set()
                sampler.join()
                peak_kb = max(status_kb(worker)["VmHWM"], sampler.peak)
                after_kb = status_kb(worker)["VmRSS"]
            finally:
                function.terminate()
                function.wait(10)
            rows.append((name, len(body), warm.status_code, idle_kb, baseline_kb, peak_kb, after_kb, statuses, seconds))
            print(f"  {name}: {dict(statuses)} in {seconds:.1f} s", file=sys.stderr, flush=True)
    finally:
        bigquery.terminate()
        bigquery.wait(10)

    mib = 1024
    memory_name, memory_mib = terraform_memory_mib()
    concurrency = terraform_concurrency()
    print(
        f"\n{CONCURRENT} concurrent requests x {ROUNDS} rounds, bodies {BODY:,} bytes (limit {MAX_BODY:,}); "
        f"worker RSS in MiB (functions-framework process beside it: {arbiter_kb / mib:.0f} MiB)\n"
    )
    header = ("protocol", "body bytes", "answers", "idle", "baseline", "peak", "(peak - baseline) / request", "after")
    print("| " + " | ".join(header) + " |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name, size, _warm, idle, baseline, peak, after, statuses, _seconds in rows:
        per_request = (peak - baseline) / CONCURRENT / mib
        worst = max(worst, per_request)
        answers = ", ".join(f"{count}x {status}" for status, count in sorted(statuses.items()))
        print(
            f"| {name} | {size:,} | {answers} | {idle / mib:.0f} | {baseline / mib:.0f} | {peak / mib:.0f} | "
            f"{per_request:.1f} | {after / mib:.0f} |"
        )
    top = max(r[5] for r in rows) / mib
    base = max(r[4] for r in rows) / mib
    print(f"\nTerraform default memory: {memory_name} ({memory_mib} MiB), concurrency {concurrency}.")
    print(
        f"Highest worker peak at {CONCURRENT} at once: {top:.0f} MiB + {arbiter_kb / mib:.0f} MiB beside it "
        f"= {top + arbiter_kb / mib:.0f} MiB of {memory_mib} MiB."
    )
    full = base + arbiter_kb / mib + concurrency * worst
    print(
        f"At concurrency {concurrency} with the worst protocol: about {base:.0f} + {arbiter_kb / mib:.0f} + "
        f"{concurrency} x {worst:.1f} = {full:.0f} MiB of {memory_mib} MiB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
