"""Where the collector's CPU goes per event: py-spy samples the running function under one of scripts/bench's loads.

The function runs as in the benchmark (functions-framework, a null insertAll endpoint, wrk sending distinct
requests); py-spy samples its processes for the length of the load: every thread that runs, in Python or in a
system call (a socket's send), as /proc counts CPU. Printed: the share of samples under each
of the request path's steps (inclusive: a step's callees count for it), and the functions where the samples
end (self time). A share of the samples is a share of the CPU the function used, so the steps' shares times
the CPU per event that scripts/bench prints is their cost per event.

    .venv/bin/python bench/profile.py            # the one-event load; `ten` or `mixed` for the others
    BENCH_BEFORE=<a checkout's root> .venv/bin/python bench/profile.py   # that checkout's code instead

py-spy is pinned in constraints.txt but no dependency of the project (CI never profiles):
`.venv/bin/python -m pip install -c constraints.txt py-spy` once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    LOADS,
    SECONDS,
    SOURCE,
    UNLIMITED,
    NullBigQuery,
    first_answer,
    free_port,
    lua,
    serve,
    wrk,
)
from bench.run import event as bench_event
from loyjoy_collector.ops.cli import local_env

# The request path's steps, by the function a sample passes through (the first that matches, from the top).
STEPS = (
    ("gate: detectors on every string", ("seal (", "Gate.seal", "json_text", "scrub_text")),
    ("validation (pydantic)", ("model_validate", "validate_python", "validate_json")),
    ("row building (rows.event_row, less the gate)", ("event_row",)),
    ("user agent and bots", ("parse_user_agent", "classify")),
    ("body: JSON parse and batch split", ("parse_json", "split_batch", "read_text")),
    ("insertAll: group commit, JSON, HTTP", ("insert_until_stored", "insert_all", "http1.py", "group_commit")),
    ("logging", ("emit (", "logs.py")),
    ("ASGI server and framework (uvicorn, starlette, ff)", ("uvicorn/protocols", "starlette/", "functions_framework/")),
    ("handler: routing, context, answer", ("handler.py", "answers.py", "exchange.py", "cors.py", "asgi.py")),
    ("ingest and storing, less the above", ("ingest.py", "sink.py", "floods.py")),
)


def steps_of(stack: list[str]) -> str:
    """The innermost step a stack is in: the gate inside event_row counts for the gate, not the row."""
    for frame in reversed(stack):
        for name, markers in STEPS:
            if any(marker in frame for marker in markers):
                return name
    return "other (the event loop itself, uvloop's C code)"


def main() -> int:
    spy_path = Path(sys.executable).parent / "py-spy"
    if not spy_path.exists():
        print("py-spy is not installed: .venv/bin/python -m pip install -c constraints.txt py-spy", file=sys.stderr)
        return 2
    load = sys.argv[1] if len(sys.argv) > 1 else "one"
    before = os.environ.get("BENCH_BEFORE")
    source, extra = SOURCE, {}
    if before:
        source = Path(before).resolve() / "functions" / "main.py"
        extra = {"PYTHONPATH": str(source.parent)}
    null = NullBigQuery()
    env = local_env(free_port(), "*") | UNLIMITED | {"BIGQUERY_API_ENDPOINT": f"http://127.0.0.1:{null.port}"}
    port = free_port()
    process = serve(source, "collect", env | extra, port)
    url = f"http://127.0.0.1:{port}"
    raw = Path(tempfile.mkdtemp()) / "profile.txt"
    try:
        import json

        first_answer(url + "/", json.dumps(bench_event("warm")).encode(), 200)
        spy = subprocess.Popen(
            [
                str(spy_path),
                "record",
                "--pid",
                str(process.pid),
                "--subprocesses",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--duration",
                str(SECONDS),
                "--nonblocking",  # every running thread, in Python or in a system call (a send): what /proc counts
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        figures = wrk(url, lua(LOADS[load][0]))
        spy.wait(timeout=60)
    finally:
        process.terminate()
        process.wait()
    by_step: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue  # a frame's name with a line break in it: the rest of that stack is on the next line
        count = int(count_text)
        stack = stack_text.split(";")
        if not any("collect" in frame or "uvicorn" in frame or "threading.py" in frame for frame in stack):
            continue  # the arbiter's loop
        total += count
        by_step[steps_of(stack)] += count
        by_leaf[stack[-1]] += count
        for frame in {frame.rsplit(":", 1)[0] for frame in stack if "loyjoy_collector" in frame}:
            inclusive[frame] += count
    print(f"load {load!r}: {figures['rps']:.0f} requests/s; {total} samples of the serving process")
    print("\nsteps (inclusive, the innermost step a sample is in):")
    for name, count in by_step.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print("\nthe collector's functions (inclusive):")
    for name, count in inclusive.most_common(25):
        print(f"  {count / total:6.1%}  {name}")
    print("\nfunctions where samples end (self):")
    for name, count in by_leaf.most_common(20):
        print(f"  {count / total:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
