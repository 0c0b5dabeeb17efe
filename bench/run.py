"""Throughput and latency of one function process writing to the local BigQuery, and cold import time.

Every figure comes with a baseline measured in the same run, so the ratios survive a slower machine:
- /healthy through the same server (the HTTP floor: functions-framework + gunicorn, no BigQuery);
- insertAll straight from the official client to the local BigQuery, one call at a time (the storage floor);
- `import flask` (what functions-framework imports anyway) and `import google.cloud.bigquery` (what the
  lazy import keeps off the cold start).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from loyjoy_collector.ops.cli import local_env, start_function, start_local_bigquery

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
EVENT = {
    "event": "sign_up",
    "detail": {"bot_id": "bench", "process_id": "p", "process_name": "Bench", "email": "a@b.co", "label": "Yes"},
    "client_id": "c-1",
    "session_id": "s-1",
    "page_location": "https://shop.example.com/?utm_source=bench",
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, body: str | None = None) -> dict[str, float]:
    script = ""
    if body is not None:
        script = (
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["User-Agent"] = "{UA}"\nwrk.body = {json.dumps(body)}\n'
        )
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


def direct_inserts(endpoint: str, dataset: str, batch: int) -> float:
    """Rows/s of insertAll from one client, one call at a time, straight into the local BigQuery."""
    client = bigquery.Client(
        project="loyjoy-local", credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=endpoint)
    )
    table = f"loyjoy-local.{dataset}.events"
    row = {"event_id": "x", "event_name": "sign_up", "event_name_raw": "sign_up", "event_known": True,
           "event_ts": "2026-11-24T10:00:00Z", "received_at": "2026-11-24T10:00:00Z", "protocol": "bench",
           "consent_analytics": "unknown", "collector_version": "bench"}  # fmt: skip
    done, start = 0, time.monotonic()
    while time.monotonic() - start < SECONDS:
        client.insert_rows_json(table, [row] * batch)
        done += batch
    return done / (time.monotonic() - start)


def import_seconds(statement: str, runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT / "functions", capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(times)


def bootstrap(env: dict[str, str], dataset: str) -> dict[str, str]:
    """A fresh dataset per measurement: the local BigQuery slows down as a table grows."""
    env = env | {"BQ_DATASET": dataset}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )
    return env


def main() -> None:
    bq_port = free_port()
    bq = start_local_bigquery(bq_port, None)
    base = local_env(bq_port, "*") | {"THREADS": str(CONNECTIONS)}
    endpoint = f"http://127.0.0.1:{bq_port}"
    figures: dict[str, dict[str, float]] = {}
    try:
        bootstrap(base, "bench_direct_1")
        bootstrap(base, "bench_direct_10")
        direct_one = direct_inserts(endpoint, "bench_direct_1", 1)
        direct_ten = direct_inserts(endpoint, "bench_direct_10", 10)
        for group_commit in ("false", "true"):
            for key, body in (("one", json.dumps(EVENT)), ("ten", json.dumps({"events": [EVENT] * 10}))):
                env = bootstrap(base, f"bench_{key}_{group_commit}") | {"BQ_GROUP_COMMIT": group_commit}
                fn_port = free_port()
                log = Path(tempfile.gettempdir()) / f"bench-function-{key}-{group_commit}.log"
                fn = start_function(fn_port, env, log)
                url = f"http://127.0.0.1:{fn_port}"
                try:
                    subprocess.run(["curl", "-s", "-o", "/dev/null", url + "/", "-d", body], check=True)  # warm up
                    if "health" not in figures:
                        figures["health"] = wrk(url + "/healthy")
                    figures[f"{key}-{group_commit}"] = wrk(url + "/", body)
                finally:
                    fn.terminate()
                    fn.wait()
    finally:
        bq.terminate()
    cold_main = import_seconds("import main")
    cold_flask = import_seconds("import flask")
    cold_bq = import_seconds("import google.cloud.bigquery")

    print(f"\nwrk: {SECONDS} s, 2 threads, {CONNECTIONS} connections; one function process (THREADS={CONNECTIONS})")
    print(f"{'what':62} {'req/s':>8} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    rows = [("GET /healthy (HTTP floor, no BigQuery)", figures["health"], 0)]
    for key, name, per in (("one", "POST / one event", 1), ("ten", "POST / batch of 10 events", 10)):
        rows.append((f"{name}, group commit off", figures[f"{key}-false"], per))
        rows.append((f"{name}, group commit on (default)", figures[f"{key}-true"], per))
    for name, f, per in rows:
        events = f"{f['rps'] * per:9.0f}" if per else f"{'':>9}"
        print(f"{name:62} {f['rps']:8.0f} {events} {f['p50']:8.2f} {f['p99']:8.2f} {f['non2xx']:8.0f}")
    print(f"{'insertAll direct, sequential, 1 row a call':62} {direct_one:8.0f} {direct_one:9.0f}")
    print(f"{'insertAll direct, sequential, 10 rows a call':62} {direct_ten / 10:8.0f} {direct_ten:9.0f}")
    one_on, ten_on = figures["one-true"]["rps"], figures["ten-true"]["rps"] * 10
    print("\nratios:")
    print(f"  one event: group commit on / off:             {one_on / figures['one-false']['rps']:.2f}")
    print(f"  batch of 10: group commit on / off:           {ten_on / (figures['ten-false']['rps'] * 10):.2f}")
    print(f"  one event (on) / direct insertAll of 1 row:   {one_on / direct_one:.2f}")
    print(f"  batch of 10 (on) / direct insertAll, 10 rows: {ten_on / direct_ten:.2f}")
    print(
        f"\ncold import (median of 7): main.py {cold_main * 1000:.0f} ms; import flask {cold_flask * 1000:.0f} ms "
        f"(functions-framework pays it anyway); import google.cloud.bigquery {cold_bq * 1000:.0f} ms "
        "(deferred to the first write)"
    )


if __name__ == "__main__":
    main()
