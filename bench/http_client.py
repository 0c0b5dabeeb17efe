"""CPU per insertAll call of the event loop's HTTP client (http1.py) against the libraries that could replace it.

The server runs in a process of its own and answers every POST at once with the head Google's front end sends
for insertAll (a dozen headers), framed with a Content-Length or chunked (as BigQuery does); the CPU counted is
the client process's (`time.process_time()`: every thread, the event loop's I/O included) over a number of
calls, one at a time or eight at once, the median of several rounds run in turn, so that every client sees the
same machine. Each client is used as its authors mean it to be: one pool (session) for the whole run.

- `http1`: this checkout's `loyjoy_collector.http1.Http1`, on uvloop as the function runs it;
- `http1 before`: the same module from BENCH_BEFORE=<a checkout's root>, when given;
- `aiohttp`: `aiohttp.ClientSession.post(...)` then `read()`, on uvloop (when installed: it is pinned in
  constraints.txt but no dependency, `.venv/bin/python -m pip install -c constraints.txt aiohttp`);
- `urllib3 thread`: urllib3's PoolManager in a worker thread, what every call cost before http1.py (and what a
  retried call still takes).

Printed: microseconds of CPU per call and the ratio to `http1` from the same run, and each client's import time
(`python -X importtime`, the module alone, after what the collector imports anyway).

    .venv/bin/python bench/http_client.py                        # BENCH_CALLS, BENCH_ROUNDS to change the run
    BENCH_BEFORE=<a checkout's root> .venv/bin/python bench/http_client.py
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
CALLS = int(os.environ.get("BENCH_CALLS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BEFORE = Path(os.environ["BENCH_BEFORE"]).resolve() if os.environ.get("BENCH_BEFORE") else None
AT_ONCE = 8

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nVary: Origin\r\nVary: X-Origin\r\n"
    b"Vary: Referer\r\nDate: Mon, 01 Jun 2026 10:00:00 GMT\r\nServer: ESF\r\nCache-Control: private\r\n"
    b"X-XSS-Protection: 0\r\nX-Frame-Options: SAMEORIGIN\r\nX-Content-Type-Options: nosniff\r\n"
    b'Alt-Svc: h3=":443"; ma=2592000,h3-29=":443"; ma=2592000\r\n'
)
BODY = b'{\n  "kind": "bigquery#tableDataInsertAllResponse"\n}\n'
ANSWERS = {
    "length": HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY,
    "chunked": HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n",
}
# An insertAll request's body: ten rows of about 1 KB (the same for every client).
REQUEST = b'{"rows":[' + b",".join([b'{"insertId":"x","json":{"a":"' + b"y" * 1000 + b'"}}'] * 10) + b"]}"
HEADERS = {"Content-Type": "application/json", "User-Agent": "bench", "Authorization": "Bearer " + "t" * 200}


# ------------------------------------------------------------------------------------------- the server


async def serve(framing: str) -> None:
    answer = ANSWERS[framing]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(one, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# ------------------------------------------------------------------------------------------- the clients

Post = Callable[[], Awaitable[Any]]


def load(root: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, root / "functions" / "loyjoy_collector" / "http1.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def http1_client(module: ModuleType, base: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    client = module.Http1(base, 10.0)

    async def post() -> Any:
        status, data = await client.post("/insertAll", REQUEST, HEADERS)
        assert status == 200 and data == BODY, (status, data)

    async def close() -> None:
        pass

    return post, close


async def aiohttp_client(base: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        base, connector=aiohttp.TCPConnector(limit=16), timeout=aiohttp.ClientTimeout(total=10.0)
    )

    async def post() -> Any:
        async with session.post("/insertAll", data=REQUEST, headers=HEADERS) as answer:
            data = await answer.read()
            assert answer.status == 200 and data == BODY, (answer.status, data)

    return post, session.close


async def urllib3_client(base: str) -> tuple[Post, Callable[[], Awaitable[None]]]:
    import urllib3

    manager = urllib3.PoolManager(maxsize=16, retries=False, timeout=urllib3.Timeout(connect=10.0, read=10.0))
    threads = concurrent.futures.ThreadPoolExecutor(AT_ONCE)
    loop = asyncio.get_running_loop()

    def call() -> None:
        answer = manager.request("POST", base + "/insertAll", body=REQUEST, headers=HEADERS)
        assert answer.status == 200 and answer.data == BODY, (answer.status, answer.data)

    async def post() -> Any:
        await loop.run_in_executor(threads, call)

    async def close() -> None:
        threads.shutdown()

    return post, close


def clients() -> dict[str, Callable[[str], Awaitable[tuple[Post, Callable[[], Awaitable[None]]]]]]:
    here = load(ROOT, "http1_here")
    found: dict[str, Any] = {"http1": lambda base: http1_client(here, base)}
    if BEFORE is not None:
        before = load(BEFORE, "http1_before")
        found["http1 before"] = lambda base: http1_client(before, base)
    if importlib.util.find_spec("aiohttp"):
        found["aiohttp"] = aiohttp_client
    found["urllib3 thread"] = urllib3_client
    return found


# ------------------------------------------------------------------------------------------- the runs


async def cpu_per_call(post: Post, at_once: int) -> float:
    """Microseconds of this process's CPU per call, `at_once` calls in flight."""
    for _ in range(20):  # connections opened, code warm
        await post()

    async def worker() -> None:
        for _ in range(CALLS // at_once):
            await post()

    began = time.process_time()
    await asyncio.gather(*(worker() for _ in range(at_once)))
    return (time.process_time() - began) / (CALLS // at_once * at_once) * 1e6


async def measure(port: int) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{port}"
    made = {name: await make(base) for name, make in clients().items()}
    figures: dict[str, dict[int, list[float]]] = {name: {1: [], AT_ONCE: []} for name in made}
    for _ in range(ROUNDS):
        for at_once in (1, AT_ONCE):
            for name, (post, _) in made.items():
                figures[name][at_once].append(await cpu_per_call(post, at_once))
    for _, close in made.values():
        await close()
    return {name: [statistics.median(by[1]), statistics.median(by[AT_ONCE])] for name, by in figures.items()}


def import_ms(module: str) -> float:
    """Milliseconds `import module` takes after what the collector's worker imports anyway (median of 5)."""
    before = "import asyncio, ssl, email, http.cookies, json, uvloop, httptools, anyio, pydantic"
    times = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"{before}; import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        line = [line for line in done.stderr.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        times.append(int(line.split("|")[1]) / 1000)
    return statistics.median(times)


def main() -> None:
    results: dict[str, dict[str, list[float]]] = {}
    for framing in ANSWERS:
        server = subprocess.Popen(
            [sys.executable, __file__, "serve", framing], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            assert server.stdout
            port = int(server.stdout.readline())
            results[framing] = uvloop.run(measure(port))
        finally:
            server.terminate()
            server.wait()
    print(f"CPU per insertAll call, µs (median of {ROUNDS} rounds of {CALLS} calls), ÷ http1 from the same run")
    print(f"{'client':<16}" + "".join(f"{f'{framing}, {n} at once':>26}" for framing in ANSWERS for n in (1, AT_ONCE)))
    for name in results["length"]:
        cells = []
        for framing in ANSWERS:
            for column, value in enumerate(results[framing][name]):
                ratio = value / results[framing]["http1"][column]
                cells.append(f"{value:>14.1f} µs {ratio:>6.2f}x")
        print(f"{name:<16}" + "".join(f"{cell:>26}" for cell in cells))
    modules = ["httptools", "urllib3"] + (["aiohttp"] if importlib.util.find_spec("aiohttp") else [])
    print("import time after the collector's own imports, ms (median of 5):")
    for module in modules:
        print(f"  {module:<14}{import_ms(module):>8.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        uvloop.run(serve(sys.argv[2]))
    else:
        main()
