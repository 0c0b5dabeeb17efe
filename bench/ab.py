"""CPU per event of this checkout against another, interleaved: both served at once, wrk alternating between them.

scripts/bench measures a version's loads and then the other's, ten seconds each: on the shared 2-core machine the
other helpers' load changes between the two, and the same code measured 0.365 ms in one run and 0.531 ms in
another. Alternating short rounds puts both versions (and the ASGI hello) under the same drift, and the median
of the per-round ratios is what a change is judged by; below about 5% it still cannot be told from noise.

    .venv/bin/python bench/ab.py <the other checkout's root> [load: one|ten|mixed] [rounds]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as bench
from loyjoy_collector.ops.cli import local_env

ROUND_SECONDS = 4


def main() -> int:
    other = Path(sys.argv[1]).resolve()
    load = sys.argv[2] if len(sys.argv) > 2 else "one"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    bench.SECONDS = ROUND_SECONDS
    null = bench.NullBigQuery()
    env = (
        local_env(bench.free_port(), "*") | bench.UNLIMITED | {"BIGQUERY_API_ENDPOINT": f"http://127.0.0.1:{null.port}"}
    )
    served = {}
    for name, root in (("this", bench.ROOT), ("other", other)):
        port = bench.free_port()
        path = {"PYTHONPATH": str(root / "functions")}
        served[name] = (bench.serve(root / "functions" / "main.py", "collect", env | path, port), port)
    hello_port = bench.free_port()
    hello = bench.serve(bench.HELLO / "asgi_hello.py", "hello", os.environ | bench.UNLIMITED, hello_port)
    served["hello"] = (hello, hello_port)
    script, per = bench.lua(bench.LOADS[load][0]), bench.LOADS[load][1]
    cpu: dict[str, list[float]] = {name: [] for name in served}
    try:
        for name, (_, port) in served.items():
            body = json.dumps(bench.event("warm")).encode() if name != "hello" else None
            bench.first_answer(f"http://127.0.0.1:{port}/", body, 200)
        for _ in range(rounds):
            for name, (process, port) in served.items():
                is_hello = name == "hello"
                run = bench.measure(
                    f"http://127.0.0.1:{port}", process.pid, "" if is_hello else script, None if is_hello else null
                )
                cpu[name].append(bench.cpu_per_event(run, 1 if is_hello else per))
    finally:
        for process, _ in served.values():
            process.terminate()
            process.wait()
    for name, values in cpu.items():
        each = " ".join(f"{value:.3f}" for value in values)
        print(f"{name:6} CPU ms per event: {each}  median {statistics.median(values):.3f}")
    ratios = [mine / theirs for mine, theirs in zip(cpu["this"], cpu["other"], strict=True)]
    print(f"this / other per round: {' '.join(f'{r:.3f}' for r in ratios)}  median {statistics.median(ratios):.3f}")
    hello_cpu = statistics.median(cpu["hello"])
    print(
        f"÷ the hello's CPU per request: this {statistics.median(cpu['this']) / hello_cpu:.2f}, "
        f"other {statistics.median(cpu['other']) / hello_cpu:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
