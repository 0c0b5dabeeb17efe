"""Real parts: a local BigQuery (bqemulator) and the function under functions-framework, on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from playwright.sync_api import Browser, sync_playwright

from loyjoy_collector.ops.cli import local_env, start_function, start_local_bigquery

from .fault_bigquery import FaultyBigQuery

PROJECT = "loyjoy-local"
DATASET = "loyjoy"
ORIGIN = "https://shop.example.com"
HASH_KEY = "test-hash-key"
LOGS = Path(os.environ.get("TEST_LOG_DIR", Path(__file__).resolve().parents[1] / ".local" / "test-logs"))
# What the tests' senders and browser say they are: a visitor's Chrome. Left as they are (python-requests,
# HeadlessChrome), every stored test event would be a bot (`is_bot`) and out of the analyst tables.
VISITOR_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
PAGE_PORT = free_port()  # the browser tests' page origin, which the collector must allow
PAGE_ORIGIN = f"http://127.0.0.1:{PAGE_PORT}"


@dataclass
class LocalBigQuery:
    url: str
    port: int
    client: bigquery.Client
    reads: Path  # one JSON line per statement that read a wildcard table: the tables it read (ops/local_bigquery.py)

    def wildcard_reads(self, after: int = 0) -> list[dict[str, Any]]:
        """What each statement that read a wildcard table read, from the `after`-th on."""
        if not self.reads.exists():
            return []
        return [json.loads(line) for line in self.reads.read_text().splitlines()[after:]]

    def table(self, name: str) -> str:
        return f"{PROJECT}.{DATASET}.{name}"

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ArrayQueryParameter(k, "STRING", v)
                if isinstance(v, list)
                else bigquery.ScalarQueryParameter(k, "STRING", v)
                for k, v in params.items()
            ]
        )
        return [dict(row.items()) for row in self.client.query(sql, job_config=config).result()]

    def refresh(self, dataset: str = DATASET) -> None:
        """Bring the analyst tables up to date, as the scheduled query does in the cloud."""
        from loyjoy_collector.ops.refresh import refresh
        from loyjoy_collector.settings import Settings
        from loyjoy_collector.sink import BigQuerySink

        settings = Settings(bigquery_api_endpoint=self.url, bq_project=PROJECT, bq_dataset=dataset)
        refresh(BigQuerySink(settings))

    def events(self, where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
        return self.query(f"SELECT * FROM `{self.table('events')}` WHERE {where} ORDER BY event_ts", **params)

    def events_once(self, where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
        """The events as `events_clean` counts them: one row per event_id. A call that timed out on the
        collector's side may have been stored all the same; its retry carries the same insertId (which BigQuery
        dedupes, best effort) and event_id (which events_clean dedupes), but the local BigQuery keeps both copies.
        An event stored under two event ids still shows twice."""
        seen: set[str] = set()
        once = []
        for row in self.events(where, **params):
            if row["event_id"] not in seen:
                seen.add(row["event_id"])
                once.append(row)
        return once

    def rejected(self, where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
        return self.query(f"SELECT * FROM `{self.table('events_rejected')}` WHERE {where}", **params)


@pytest.fixture(scope="session")
def local_bigquery() -> Iterator[LocalBigQuery]:
    LOGS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    reads = LOGS / f"wildcard-reads-{port}.jsonl"
    reads.unlink(missing_ok=True)
    process = start_local_bigquery(port, None, LOGS / "bigquery.log", reads)
    url = f"http://127.0.0.1:{port}"
    client = bigquery.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=url)
    )
    env = local_env(port, ORIGIN)
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=env, check=True, capture_output=True
    )
    try:
        yield LocalBigQuery(url, port, client, reads)
    finally:
        stop(process)


@dataclass
class Collector:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        """The collector's structured log lines (functions-framework's own lines are not JSON: skipped)."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def post(self, body: Any, *, path: str = "/", origin: str | None = ORIGIN, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("User-Agent", VISITOR_UA)
        if origin:
            headers.setdefault("Origin", origin)
        if isinstance(body, bytes | str):
            headers.setdefault("Content-Type", "text/plain")
            return requests.post(self.url + path, data=body, headers=headers, timeout=30, **kwargs)
        return requests.post(self.url + path, json=body, headers=headers, timeout=30, **kwargs)


def start_collector(bigquery_url: str, name: str, port: int | None = None, **extra_env: str) -> Collector:
    port = port or free_port()
    env = local_env(0, f"{ORIGIN},{PAGE_ORIGIN}")
    env.update(BIGQUERY_API_ENDPOINT=bigquery_url, PII_HASH_KEY=HASH_KEY, LOG_FORMAT="json")
    # The suites send thousands of requests a minute from one address and client: the flood limits are
    # tested by a collector of their own (tests/test_floods.py).
    env.update(
        RATE_LIMIT_ADDRESS_PER_SECOND="1e9",
        RATE_LIMIT_CLIENT_PER_SECOND="1e9",
        RATE_LIMIT_ADDRESS_BURST="1000000000",
        RATE_LIMIT_CLIENT_BURST="1000000000",
        RATE_LIMIT_SGTM_ADDRESS_PER_SECOND="1e9",
        RATE_LIMIT_SGTM_ADDRESS_BURST="1000000000",
        REFUSAL_BUDGET_PER_MINUTE="1000000000",
    )
    env.update(extra_env)
    log = LOGS / f"{name}.log"
    log.unlink(missing_ok=True)
    process = start_function(port, env, log)
    return Collector(f"http://127.0.0.1:{port}", process, log)


@pytest.fixture(scope="session")
def collector(local_bigquery: LocalBigQuery) -> Iterator[Collector]:
    running = start_collector(
        local_bigquery.url,
        "collector",
        IP_MODE="truncate",
        DATA_PATHS="/data,/lj-events/",
        PII_ALLOWED_KEYS="*_tier",  # an operator's own analytical keys, as a pattern
    )
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture(scope="session")
def fault_injector(local_bigquery: LocalBigQuery) -> Iterator[FaultyBigQuery]:
    proxy = FaultyBigQuery(local_bigquery.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def faulty_collector(fault_injector: FaultyBigQuery) -> Iterator[Collector]:
    """A collector whose BigQuery is behind the fault injector, with short deadlines so tests stay fast."""
    running = start_collector(
        fault_injector.url,
        "faulty-collector",
        BQ_TIMEOUT_SECONDS="0.5",
        BQ_RETRY_DEADLINE_SECONDS="2",
        RETRY_AFTER_SECONDS="7",
    )
    try:
        yield running
    finally:
        stop(running.process)


# Tests that need the local stack (a BigQuery emulator, the function, a browser): `pytest -m "not stack"` is the
# fast loop for a change to pure code; CI runs everything.
STACK_FIXTURES = frozenset({"local_bigquery", "browser"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(autouse=True)
def _healthy_bigquery(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fault_injector" in request.fixturenames:
        request.getfixturevalue("fault_injector").reset()


@pytest.fixture
def tag() -> str:
    """A unique marker per test, so that assertions only see that test's rows."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-agent={VISITOR_UA}",
            ],
        )
        yield launched
        launched.close()
