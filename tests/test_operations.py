"""Operating it: structured log lines that Cloud Logging reads, with nothing personal in them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from loyjoy_collector.ops.cli import local_env

from .conftest import HASH_KEY, ORIGIN

EMAIL = "log.person@example.com"
PHONE = "+49 170 4445556"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def wait_for_line(collector, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in collector.log_lines() if predicate(line)]
        if found or time.monotonic() > deadline:
            assert found, "no such log line"
            return found[-1]
        time.sleep(0.2)


def test_log_lines_are_json_for_cloud_logging_with_trace_labels_and_no_personal_data(collector, local_bigquery, tag):
    body = f'{{"event": "open", "bot_id": "{tag}", "detail": {{"email": "{EMAIL}", "tel": "{PHONE}"'
    refused = collector.post(
        body.encode(), headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01", "Origin": ORIGIN}
    )
    assert refused.status_code == 400
    rejected_id = refused.json()["rejected_id"]
    line = wait_for_line(collector, lambda entry: entry.get("rejected_id") == rejected_id)
    assert line["severity"] == "WARNING" and line["event"] == "refused"
    assert line["logging.googleapis.com/trace"] == f"projects/loyjoy-local/traces/{TRACE}"
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert line["logging.googleapis.com/labels"] == {
        "event": "refused",
        "reason": "invalid_json",
        "protocol": "loyjoy",
        "status": "400",
    }

    mixed = collector.post(
        {"events": [{"event": "open", "bot_id": tag}, {"event": f"Bad {EMAIL}", "bot_id": tag}]},
        headers={"X-Cloud-Trace-Context": f"{TRACE}/12345;o=1", "Origin": ORIGIN},
    )
    assert mixed.status_code == 207
    kept = mixed.json()["results"][1]["rejected_id"]
    line = wait_for_line(collector, lambda entry: kept in entry.get("rejected_ids", []))
    assert (line["reason"], line["refused"], line["events"], line["status"]) == ("invalid_event_name", 1, 2, 207)
    assert line["logging.googleapis.com/spanId"] == f"{12345:016x}"

    start = wait_for_line(collector, lambda entry: entry.get("event") == "start")
    assert start["settings"]["pii_hash_key_set"] is True and "pii_hash_key" not in start["settings"]
    # the operator's own values, as configured: an endpoint with its address, the origins
    assert start["settings"]["bigquery_api_endpoint"] == local_bigquery.url
    assert ORIGIN in start["settings"]["allowed_origins"]
    stored = wait_for_line(collector, lambda entry: entry.get("event") == "stored")
    assert stored["events"] >= 1

    text = collector.log.read_text()
    for secret in (EMAIL, "log.person", "4445556", "test-hash-key"):
        assert secret not in text, secret


def test_storage_unavailable_and_rows_bigquery_refuses_are_logged(faulty_collector, fault_injector, tag):
    fault_injector.fail(503)
    assert faulty_collector.post({"event": "open", "bot_id": tag}).status_code == 503
    fault_injector.reset()
    line = wait_for_line(faulty_collector, lambda entry: entry.get("event") == "storage_unavailable")
    assert line["severity"] == "ERROR" and line["status"] == 503 and "BigQuery" in line["cause"]

    fault_injector.refuse_rows(lambda row: f"no such field: {EMAIL}" if row.get("bot_id") == tag else None)
    assert faulty_collector.post({"event": "open", "bot_id": tag}).status_code == 400
    line = wait_for_line(  # this test's refusal: the session's collector logged others' before
        faulty_collector,
        lambda entry: entry.get("event") == "bigquery_refused" and "no such field" in entry.get("message", ""),
    )
    assert line["severity"] == "ERROR" and line["rows"] == 1 and "no such field" in line["message"]
    assert EMAIL not in json.dumps(line)


# ------------------------------------------------------------- the CLI (erasure: tests/test_erase.py)


def run_cli(*args: str, bigquery_url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = local_env(0, ORIGIN) | {"BIGQUERY_API_ENDPOINT": bigquery_url, "PII_HASH_KEY": HASH_KEY}
    return subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------------------------- check


def test_check_passes_on_a_healthy_collector_and_its_event_counts_nowhere(collector, local_bigquery):
    result = run_cli("check", collector.url + "/", "--origin", ORIGIN, bigquery_url=local_bigquery.url)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert [line.split()[0] for line in lines] == ["PASS"] * 5, result.stdout
    assert "all checks passed" in result.stdout
    checked = local_bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{local_bigquery.table('events')}` WHERE event_name = 'collector_check'"
    )
    hidden = local_bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{local_bigquery.table('events_dedup')}` WHERE event_name = 'collector_check'"
    )
    assert checked[0]["n"] >= 1 and hidden[0]["n"] == 0


def test_check_fails_loudly_on_a_broken_collector(faulty_collector, fault_injector, local_bigquery):
    fault_injector.fail(503)  # a revoked role, a deleted table: BigQuery takes nothing
    broken = run_cli("check", faulty_collector.url, "--origin", ORIGIN, bigquery_url=local_bigquery.url)
    fault_injector.reset()
    assert broken.returncode == 1 and "FAILED" in broken.stdout
    verdicts = {
        line.split()[1]: line.split()[0] for line in broken.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))
    }
    assert verdicts["health"] == "PASS" and verdicts["snippet"] == "PASS"
    assert verdicts["event"] == "FAIL" and verdicts["refusal"] == "FAIL"
    foreign = run_cli(
        "check",
        faulty_collector.url,
        "--origin",
        "https://not-allowed.example",
        "--no-read",
        bigquery_url=local_bigquery.url,
    )
    assert foreign.returncode == 1 and "FAIL  CORS" in foreign.stdout
