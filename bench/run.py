"""The collector's speed per vCPU and its cold start, against baselines measured in the same run on the same box.

Baselines: functions-framework's hello-world in its Flask mode (what the collector ran on before) and in its
ASGI mode (what it runs on now), served the same way (`functions-framework --source … --target hello`).
Loads, each for BENCH_SECONDS with wrk (2 threads, BENCH_CONNECTIONS connections), every request distinct
(client, session, label and page vary, as real traffic does):
- POST / with one event, and with batches of 10 (the snippet's protocol);
- a mixed server-side GTM load: Stape Data Tag posts, GA4 /g/collect hits and snippet posts in turn.

BigQuery is a null insertAll endpoint (it answers every call at once and counts them): on a two-core box the
local BigQuery would take the CPU the collector is measured on, and in production BigQuery's CPU is not the
instance's. The one-event and batch loads are run against the local BigQuery too, as a check that the figures
hold with a real insertAll behind them.

Printed: requests/s, events/s, ratios to each hello, p50/p99, the function's CPU per event (utime + stime of
its processes, from /proc), insertAll calls per event, the cost per million events at list prices
(request-based and instance-based billing), and the cold start: process start to first answer for the hellos,
to the first stored event for the collector (median of COLD_RUNS).

BENCH_BEFORE=<a checkout's root> runs the same collector loads and cold start against that checkout's code in
the same run (its `functions/` first on PYTHONPATH), printed as "before" under each row: a change is judged
against its parent on the same machine at the same time, not against figures from another day.
BENCH_LOCAL_BQ=0 leaves out the loads against the local BigQuery.

Every checkout's `functions/` (and the hellos) is compiled to bytecode first, as pip compiles an installed
package: with PYTHONDONTWRITEBYTECODE set, or on a first start, Python would otherwise compile the collector's
fifty-odd modules from source on every cold start (about 50 ms here), which says nothing about the code.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from loyjoy_collector.ops.cli import local_env, start_local_bigquery

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "main.py"
HELLO = Path(__file__).resolve().parent / "hello"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
COLD_RUNS = int(os.environ.get("COLD_RUNS", "5"))
BEFORE = Path(os.environ["BENCH_BEFORE"]).resolve() if os.environ.get("BENCH_BEFORE") else None
LOCAL_BQ = os.environ.get("BENCH_LOCAL_BQ", "1") != "0"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
UNLIMITED = {
    "RATE_LIMIT_ADDRESS_PER_SECOND": "1e9",
    "RATE_LIMIT_ADDRESS_BURST": "1000000000",
    "RATE_LIMIT_CLIENT_PER_SECOND": "1e9",
    "RATE_LIMIT_CLIENT_BURST": "1000000000",
    "RATE_LIMIT_SGTM_ADDRESS_PER_SECOND": "1e9",  # the sGTM routes' own per-address limits (the mixed load)
    "RATE_LIMIT_SGTM_ADDRESS_BURST": "1000000000",
    "REFUSAL_BUDGET_PER_MINUTE": "1000000000",
    "THREADS": str(CONNECTIONS),
}

# List prices (USD), Cloud Run functions / Cloud Run tier 1, and BigQuery's legacy streaming inserts.
REQUEST_BASED = {"vcpu_second": 0.000024, "gib_second": 0.0000025, "per_million_requests": 0.40}
INSTANCE_BASED = {"vcpu_second": 0.000018, "gib_second": 0.000002, "per_million_requests": 0.0}
MEMORY_GIB = 0.5  # Terraform's default memory for the function
STREAMING_PER_GB = 0.05  # $0.01 per 200 MB, each row counted as at least 1 KB
ROW_BYTES = 1024


# ------------------------------------------------------------------------------------------- the loads


def event(n: str, label: str = "Yes") -> dict[str, object]:
    return {
        "event": "sign_up",
        "detail": {
            "bot_id": "bench",
            "process_id": "p1",
            "process_name": "Newsletter",
            "email": f"visitor{n}@example.com",
            "label": label,
        },
        "client_id": f"c-{n}",
        "session_id": f"s-{n}",
        "page_location": f"https://shop.example.com/angebote?utm_source=bench&utm_campaign=c{n}",
        "page_title": "Angebote",
        "language": "de-DE",
        "sdk": "loyjoy-snippet/0.1.0",
    }


def data_tag(n: str) -> dict[str, object]:
    return {
        "event_name": "loyjoy",
        "gaEventCategory": "loyjoy",
        "gaEventAction": "Newsletter",
        "gaEventLabel": "sign_up",
        "bot_id": "bench",
        "client_id": f"dc-{n}",
        "page_location": "https://shop.example.com/landing?utm_source=news",
        "page_title": "Landing",
        "language": "de-de",
        "user_data": {"email_address": f"visitor{n}@example.com"},
    }


GA4 = (
    "/g/collect?v=2&tid=G-BENCH&cid=@N@.1732000000&sid=1732440000&ul=de-de&en=loyjoy&ep.gaEventCategory=loyjoy"
    "&ep.gaEventAction=Newsletter&ep.gaEventLabel=sign_up&ep.bot_id=bench&dl=https%3A%2F%2Fshop.example.com%2F"
)


def lua(requests: list[tuple[str, str, str | None]]) -> str:
    """A wrk script cycling through (method, path, body) templates, `@N@` replaced by a fresh number each time."""
    items = ",\n".join(
        "{" + f"{json.dumps(method)}, {json.dumps(path)}, {json.dumps(body) if body else 'nil'}" + "}"
        for method, path, body in requests
    )
    return f"""
local items = {{
{items}
}}
local counter = 0
local headers = {{["Content-Type"] = "text/plain", ["User-Agent"] = "{UA}", ["Origin"] = "https://shop.example.com"}}
function setup(thread) thread:set("salt", tostring(math.random(1000000))) end
request = function()
  counter = counter + 1
  local n = salt .. "x" .. counter
  local item = items[(counter % #items) + 1]
  local path = string.gsub(item[2], "@N@", n)
  local body = item[3] and string.gsub(item[3], "@N@", n) or nil
  return wrk.format(item[1], path, headers, body)
end
"""


LABELS = ["Ja", "Nein", "Weiter", "Jetzt anmelden", "Später"]
LOADS: dict[str, tuple[list[tuple[str, str, str | None]], int]] = {
    "one": ([("POST", "/", json.dumps(event("@N@", label))) for label in LABELS], 1),
    "ten": ([("POST", "/", json.dumps({"events": [event(f"@N@-{k}", LABELS[k % 5]) for k in range(10)]}))], 10),
    "mixed": (
        [("POST", "/data", json.dumps(data_tag("@N@"))), ("GET", GA4, None), ("POST", "/", json.dumps(event("@N@")))],
        1,
    ),
}


# ---------------------------------------------------------------------------------------- measuring


@dataclass
class Run:
    rps: float
    p50: float
    p99: float
    non2xx: float
    cpu_seconds: float
    calls: int


def wrk(url: str, script: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", handle.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(handle.name)

    def millis(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": millis("50%"),
        "p99": millis("99%"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            queue.extend(int(child) for child in task.read_text().split())
    return pids


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class NullBigQuery:
    """insertAll that answers at once (`{}`: every row stored) and counts its calls; any other call too."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 49\r\n\r\n" + (
        b'{"kind":"bigquery#tableDataInsertAllResponse"}   '
    )

    def __init__(self) -> None:
        self.calls = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    async def _start(self) -> None:
        await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                self.calls += 1
                writer.write(self.ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(source: Path, target: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    framework = [sys.executable, "-m", "functions_framework", "--source", str(source), "--target", target]
    command = [*framework, "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_answer(url: str, body: bytes | None, ok: int, timeout: float = 30.0) -> float:
    """Seconds from now until `url` answers `ok` (polled every 2 ms while nothing listens)."""
    start = time.perf_counter()
    headers = {"Content-Type": "text/plain", "User-Agent": UA}
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as answer:
                if answer.status == ok:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.002)
    raise TimeoutError(url)


def measure(url: str, pid: int, script: str, counter: NullBigQuery | None) -> Run:
    before, calls = cpu_seconds(pid), counter.calls if counter else 0
    figures = wrk(url, script)
    used = cpu_seconds(pid) - before
    made = (counter.calls - calls) if counter else 0
    return Run(figures["rps"], figures["p50"], figures["p99"], figures["non2xx"], used, made)


def run_function(
    source: Path,
    target: str,
    env: dict[str, str],
    load: str | None,
    counter: NullBigQuery | None,
    ok_body: bytes | None = None,
) -> Run:
    port = free_port()
    process = serve(source, target, env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        first_answer(url + "/", ok_body, 200)  # warm: the runtime is built on the first request
        script = lua(LOADS[load][0]) if load else ""
        return measure(url, process.pid, script, counter)
    finally:
        process.terminate()
        process.wait()


def cold(source: Path, target: str, env: dict[str, str], body: bytes | None) -> float:
    times = []
    for _ in range(COLD_RUNS):
        port = free_port()
        started = time.perf_counter()
        process = serve(source, target, env, port)
        try:
            first_answer(f"http://127.0.0.1:{port}/", body, 200)
            times.append(time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait()
    return statistics.median(times)


# ----------------------------------------------------------------------------------------- printing


def cost_per_million(cpu_ms_per_event: float, events_per_request: float) -> tuple[float, float, float]:
    """(request-based, instance-based, BigQuery streaming) USD per million events, with the instance busy: its
    billable time is the CPU time the events take on one vCPU."""
    seconds = cpu_ms_per_event / 1000 * 1_000_000
    requests = 1_000_000 / events_per_request
    by_request = seconds * (REQUEST_BASED["vcpu_second"] + MEMORY_GIB * REQUEST_BASED["gib_second"]) + (
        requests / 1_000_000 * REQUEST_BASED["per_million_requests"]
    )
    by_instance = seconds * (INSTANCE_BASED["vcpu_second"] + MEMORY_GIB * INSTANCE_BASED["gib_second"])
    streaming = 1_000_000 * ROW_BYTES / 1e9 * STREAMING_PER_GB
    return by_request, by_instance, streaming


def cpu_per_event(run: Run, per: int) -> float:
    """Milliseconds of the function's CPU per event (per request for a hello)."""
    return run.cpu_seconds / (run.rps * SECONDS * per) * 1000


def main() -> None:
    null = NullBigQuery()
    bq_port = free_port()
    bq = start_local_bigquery(bq_port, None)
    base = os.environ | UNLIMITED | {"PYTHONPATH": str(ROOT / "functions")}
    null_env = local_env(bq_port, "*") | UNLIMITED | {"BIGQUERY_API_ENDPOINT": f"http://127.0.0.1:{null.port}"}
    real_env = local_env(bq_port, "*") | UNLIMITED | {"BQ_DATASET": "bench"}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=real_env, check=True, capture_output=True
    )
    for tree in (ROOT / "functions", HELLO, *([BEFORE / "functions"] if BEFORE else [])):
        compileall.compile_dir(tree, quiet=1)
    one = json.dumps(event("warm")).encode()
    runs: dict[str, Run] = {}
    colds: dict[str, float] = {}
    versions = [("", SOURCE, {})]
    if BEFORE is not None:
        versions.append(("-before", BEFORE / "functions" / "main.py", {"PYTHONPATH": str(BEFORE / "functions")}))
    try:
        runs["flask"] = run_function(HELLO / "flask_hello.py", "hello", base, None, None)
        runs["asgi"] = run_function(HELLO / "asgi_hello.py", "hello", base, None, None)
        for suffix, source, path in versions:
            for load in LOADS:
                runs[load + suffix] = run_function(source, "collect", null_env | path, load, null, one)
            for load in ("one", "ten") if LOCAL_BQ else ():
                runs[f"{load}-bq{suffix}"] = run_function(source, "collect", real_env | path, load, None, one)
        colds["flask"] = cold(HELLO / "flask_hello.py", "hello", base, None)
        colds["asgi"] = cold(HELLO / "asgi_hello.py", "hello", base, None)
        for suffix, source, path in versions:
            colds["collector" + suffix] = cold(source, "collect", real_env | path, one)
    finally:
        bq.terminate()
    report(runs, colds)


def report(runs: dict[str, Run], colds: dict[str, float]) -> None:
    flask, asgi = runs["flask"].rps, runs["asgi"].rps
    print(
        f"\nwrk: {SECONDS} s, 2 threads, {CONNECTIONS} connections; one function process, THREADS={CONNECTIONS}; "
        f"{os.cpu_count()} cores shared by wrk, the function and BigQuery"
    )
    head = f"{'what':44} {'req/s':>7} {'events/s':>8} {'/flask':>6} {'/asgi':>6} {'p50 ms':>7} {'p99 ms':>7}"
    print(head + f" {'CPU ms/ev':>9} {'calls/ev':>8} {'non-2xx':>7}")
    names = {
        "flask": ("hello, Flask mode", 0),
        "asgi": ("hello, ASGI mode", 0),
        "one": ("POST / one event", 1),
        "ten": ("POST / batches of 10", 10),
        "mixed": ("mixed sGTM: /data, /g/collect, POST /", 1),
        "one-bq": ("POST / one event, local BigQuery", 1),
        "ten-bq": ("POST / batches of 10, local BigQuery", 10),
    }
    for key, (name, per) in names.items():
        for suffix, label in (("", name), ("-before", "  before")):
            if key + suffix not in runs:
                continue
            run = runs[key + suffix]
            count = run.rps * SECONDS * max(per, 1)
            events = run.rps * per if per else run.rps
            calls = f"{run.calls / count:8.3f}" if per and key in LOADS else f"{'':>8}"
            print(
                f"{label:44} {run.rps:7.0f} {events:8.0f} {events / flask:6.2f} {events / asgi:6.2f} {run.p50:7.2f} "
                f"{run.p99:7.2f} {run.cpu_seconds / count * 1000:9.3f} {calls} {run.non2xx:7.0f}"
            )

    hello_cpu = cpu_per_event(runs["asgi"], 1)
    for suffix in ("", "-before"):
        if "one" + suffix not in runs:
            continue
        print("\ngoals, against the ASGI hello's CPU per request:" + (" (before)" if suffix else ""))
        cold_ratio = colds["collector" + suffix] / colds["asgi"]
        checks = [
            ("one event: CPU per request / hello's <= 5", cpu_per_event(runs["one" + suffix], 1) / hello_cpu, 5.0),
            ("batches of 10: CPU per event / hello's <= 1.5", cpu_per_event(runs["ten" + suffix], 10) / hello_cpu, 1.5),
            ("cold start: collector / ASGI hello <= 1.5", cold_ratio, 1.5),
        ]
        for name, value, goal in checks:
            print(f"  {name:52} {value:7.2f}  {'met' if value <= goal else 'NOT met'}")
    before = f", before {colds['collector-before'] * 1000:.0f} ms" if "collector-before" in colds else ""
    print(
        f"\ncold start (median of {COLD_RUNS}, process start to first answer): Flask hello "
        f"{colds['flask'] * 1000:.0f} ms, ASGI hello {colds['asgi'] * 1000:.0f} ms, collector's first stored event "
        f"{colds['collector'] * 1000:.0f} ms{before}"
    )

    print(
        f"\ncost per million events, USD at list prices ({MEMORY_GIB} GiB, the instance busy; BigQuery streaming "
        "at 1 KB a row):"
    )
    for key, per in (("one", 1), ("ten", 10), ("mixed", 1)):
        cpu = cpu_per_event(runs[key], per)
        by_request, by_instance, streaming = cost_per_million(cpu, per)
        print(
            f"  {names[key][0]:44} request-based {by_request:6.3f}  instance-based {by_instance:6.3f}  "
            f"+ streaming {streaming:.3f}"
        )


if __name__ == "__main__":
    main()
