"""Erasure (GDPR Art. 17) against the real local BigQuery: exactly one person's rows, every table, no key no run.

Rows are written by the real collector (functions-framework), so what erase looks for is what the collector
stored: hashes and pseudonyms through the one keyed-hash module, ids as each protocol carries them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import re2
import requests

from loyjoy_collector.ops import erase
from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.privacy import hashing

from .conftest import HASH_KEY, ORIGIN, Collector, LocalBigQuery
from .fault_bigquery import FaultyBigQuery


def run_cli(*args: str, bigquery_url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = local_env(0, ORIGIN) | {"BIGQUERY_API_ENDPOINT": bigquery_url, "PII_HASH_KEY": HASH_KEY}
    return subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def erase_cli(local_bigquery: LocalBigQuery, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("erase", *args, "--pending-file", str(tmp_path / "pending.json"), bigquery_url=local_bigquery.url)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ga_client_id() -> str:
    """GA's `_ga` cookie form: random number, first-visit seconds."""
    return f"{random.randrange(10**9, 10**10)}.{random.randrange(10**9, 10**10)}"


def ga4_hit(collector: Collector, tag: str, cid: str, label: str = "open", **extra: str) -> requests.Response:
    params = {
        "v": "2",
        "tid": "G-ERASE1",
        "cid": cid,
        "sid": "1732440000",
        "en": "loyjoy",
        "ep.gaEventCategory": "loyjoy",
        "ep.gaEventLabel": label,
        "ep.bot_id": tag,
    } | extra
    return requests.get(collector.url + "/g/collect?" + urlencode(params), headers={"Origin": ORIGIN}, timeout=30)


def rejected_ids(local_bigquery: LocalBigQuery, ids: list[str]) -> set[str]:
    rows = local_bigquery.rejected("rejected_id IN UNNEST(@ids)", ids=ids)
    return {row["rejected_id"] for row in rows}


# ---------------------------------------------------------------------------------- the person, everywhere


def test_erasure_takes_the_person_with_their_linked_client_ids_and_waits_out_the_streaming_buffer(
    collector: Collector, local_bigquery: LocalBigQuery, fault_injector: FaultyBigQuery, tag: str, tmp_path: Path
) -> None:
    email = f"erase.me.{tag}@example.com"
    mine, other = f"c-{tag}-mine", f"c-{tag}-other"
    sends = [
        {"event": "sign_in", "bot_id": tag, "client_id": mine, "detail": {"email": email}},
        {"event": "open", "bot_id": tag, "client_id": mine},  # anonymous, but the same browser
        {"event": "open", "bot_id": tag, "client_id": email},  # a site that uses the address as its client id
        {"event": "open", "bot_id": tag, "client_id": other},  # somebody else
    ]
    assert collector.post({"events": sends}).status_code == 200
    refused = collector.post({"event": "Bad Name", "bot_id": tag, "client_id": mine, "detail": {"email": email}})
    assert refused.status_code == 400
    assert run_cli("refresh", bigquery_url=local_bigquery.url).returncode == 0  # the analyst tables have them too
    pending = tmp_path / "pending.json"
    common = ("--retry-every", "0.5", "--pending-file", str(pending))

    dry = run_cli("erase", "--email", email, "--dry-run", *common, bigquery_url=fault_injector.url)
    assert dry.returncode == 0, dry.stderr
    assert "events: 3 rows would be deleted" in dry.stdout and "events_rejected: 1 rows would be deleted" in dry.stdout
    assert "events_clean: 3 rows would be deleted" in dry.stdout
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 4

    fault_injector.refuse_dml(2)  # rows streamed minutes ago: BigQuery says no, twice
    done = run_cli("erase", "--email", email, *common, bigquery_url=fault_injector.url)
    assert done.returncode == 0, done.stderr
    assert "streaming buffer" in done.stdout
    assert [r["client_id"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == [other]
    assert local_bigquery.rejected("rejected_id = @id", id=refused.json()["rejected_id"]) == []
    [audit] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    deleted = {table: n for table, n in audit["deleted"].items() if n}
    assert audit["event"] == "erasure" and deleted == {
        "events": 3,
        "events_rejected": 1,
        "events_clean": 3,
        "events_clean_this_run": 3,
    }
    for table in ("events_clean", "sessions"):
        left = local_bigquery.query(
            f"SELECT COUNT(*) AS n FROM `{local_bigquery.table(table)}` WHERE client_id = @c", c=mine
        )
        assert left[0]["n"] == 0
    assert email not in done.stdout + done.stderr and mine not in json.dumps(audit)
    assert not pending.exists()


def test_an_interrupted_erasure_is_finished_by_resume(
    collector: Collector, local_bigquery: LocalBigQuery, fault_injector: FaultyBigQuery, tag: str, tmp_path: Path
) -> None:
    mine = f"c-{tag}"
    assert collector.post({"event": "open", "bot_id": tag, "client_id": mine}).status_code == 200
    pending = tmp_path / "pending.json"
    fault_injector.refuse_dml(100)
    stopped = run_cli(
        "erase", "--client-id", mine, "--wait", "0", "--pending-file", str(pending), bigquery_url=fault_injector.url
    )
    assert stopped.returncode != 0 and "--resume" in stopped.stdout and pending.exists()
    assert mine in pending.read_text() and len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1
    fault_injector.reset()
    resumed = run_cli("erase", "--resume", "--pending-file", str(pending), bigquery_url=fault_injector.url)
    assert resumed.returncode == 0, resumed.stderr
    assert local_bigquery.events("bot_id = @tag", tag=tag) == [] and not pending.exists()


# ------------------------------------------------------------------------------------ GA4 hits are theirs


def test_the_persons_ga4_hits_go_by_their_ga_client_id(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    email = f"ga.person.{tag}@example.com"
    mine, theirs = ga_client_id(), ga_client_id()
    signin = {
        "event": "sign_in",
        "bot_id": tag,
        "client_id": f"c-{tag}",
        "ga_client_id": mine,
        "detail": {"email": email},
    }
    assert collector.post(signin).status_code == 200
    assert ga4_hit(collector, tag, mine).status_code == 204  # protocol ga4: client_id is the GA client id
    assert ga4_hit(collector, tag, theirs).status_code == 204  # somebody else's GA4 hit
    refused = ga4_hit(collector, tag, mine, sid="not-a-number")  # refused: its cid is in the kept query string
    near = ga4_hit(collector, tag, mine + "1", sid="not-a-number")  # another cid that starts like it
    assert refused.status_code == near.status_code == 400
    kept = [refused.json()["rejected_id"], near.json()["rejected_id"]]
    [ga4_row] = local_bigquery.events("bot_id = @tag AND protocol = 'ga4' AND client_id = @c", tag=tag, c=mine)
    assert ga4_row["ga_client_id"] == mine and ga4_row["email_hash"] is None
    assert run_cli("refresh", bigquery_url=local_bigquery.url).returncode == 0

    done = erase_cli(local_bigquery, tmp_path, "--email", email)
    left = local_bigquery.events("bot_id = @tag", tag=tag)
    assert [(r["protocol"], r["client_id"]) for r in left] == [("ga4", theirs)]
    assert rejected_ids(local_bigquery, kept) == {near.json()["rejected_id"]}
    assert "events: 2 rows deleted" in done.stdout and "events_rejected: 1 rows deleted" in done.stdout
    sessions = local_bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{local_bigquery.table('sessions')}` WHERE ga_client_id = @g", g=mine
    )
    assert sessions[0]["n"] == 0


def test_an_empty_ga_client_id_links_nobody(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    email = f"empty.ga.{tag}@example.com"
    sends = [
        {"event": "sign_in", "bot_id": tag, "client_id": f"c-{tag}", "ga_client_id": "", "detail": {"email": email}},
        {"event": "open", "bot_id": tag, "client_id": f"c-{tag}-stranger", "ga_client_id": ""},
    ]
    assert collector.post({"events": sends}).status_code == 200
    assert [r["ga_client_id"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == ["", ""]
    erase_cli(local_bigquery, tmp_path, "--email", email)
    assert [r["client_id"] for r in local_bigquery.events("bot_id = @tag", tag=tag)] == [f"c-{tag}-stranger"]


# ------------------------------------------------------------------------- whole ids, never substrings


def test_a_refusal_that_merely_contains_the_id_survives(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    mine = f"c-{tag}"
    theirs = [mine + "0", "x" + mine, mine + "-2"]
    stored = [{"event": "open", "bot_id": tag, "client_id": value} for value in [mine, *theirs]]
    assert collector.post({"events": stored}).status_code == 200

    def refuse(body: Any, path: str = "/") -> str:
        answer = collector.post(body, path=path)
        assert answer.status_code in (400, 413), answer.text
        return answer.json()["rejected_id"]

    crowd = [{"event": "open", "client_id": f"c-{n}"} for n in range(100)]  # too many: the batch is kept whole
    gone = [
        refuse({"event": "Bad Name", "bot_id": tag, "client_id": mine}),
        refuse({"events": [*crowd, {"event": "open", "client_id": mine}]}),  # one of its events
        refuse([*crowd, {"event": "open", "cid": mine}], path="/data"),  # a Data Tag batch: a top-level array
        refuse(f'{{"event": "open", "bot_id": "{tag}", "client_id": "{mine}", "det'.encode()),  # not JSON
    ]
    kept = [
        *(refuse({"event": "Bad Name", "bot_id": tag, "client_id": other}) for other in theirs),
        refuse({"event": "Bad Name", "bot_id": tag, "client_id": "someone", "label": mine}),  # not an id field
        *(refuse(f'{{"event": "open", "client_id": "{other}", "det'.encode()) for other in theirs),
        refuse({"events": [*crowd, *({"event": "open", "client_id": other} for other in theirs)]}),
    ]

    dry = erase_cli(local_bigquery, tmp_path, "--client-id", mine, "--dry-run")
    assert "events: 1 rows would be deleted" in dry.stdout and "events_rejected: 4 rows would be deleted" in dry.stdout
    erase_cli(local_bigquery, tmp_path, "--client-id", mine)
    assert sorted(r["client_id"] for r in local_bigquery.events("bot_id = @tag", tag=tag)) == sorted(theirs)
    assert rejected_ids(local_bigquery, gone + kept) == set(kept)


@pytest.mark.parametrize("value", ["c-1", "1234.5678", "a+b", "x(y)*", "a\\b", "ä.ö", "[x]"])
def test_token_patterns_match_the_whole_id_only(value: str) -> None:
    pattern = re2.compile(erase.token_pattern(value))  # RE2, as BigQuery and the local BigQuery use
    for text in (value, f"cid={value}&en=x", f'"client_id": "{value}"', f"{value}\n", f"a {value}, b"):
        assert pattern.search(text), text
    for text in (value + "0", "x" + value, f"cid={value}.1&", f'"{value}-2"', value[:-1]):
        assert not pattern.search(text), text


# ------------------------------------------------------------------------------ a shared id is ambiguous


def test_an_id_claimed_by_someone_else_is_ambiguous_and_goes_only_when_named(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    victim, attacker = f"victim.{tag}@example.com", f"me.{tag}@evil.example"
    shared = f"c-{tag}-victim"
    sends = [
        {"event": "sign_in", "bot_id": tag, "client_id": shared, "detail": {"email": victim}},
        {"event": "open", "bot_id": tag, "client_id": shared},  # the victim, anonymous
        {"event": "sign_in", "bot_id": tag, "client_id": shared, "detail": {"email": attacker}},  # the claim
        {"event": "open", "bot_id": tag, "client_id": f"c-{tag}-attacker", "detail": {"email": attacker}},
    ]
    assert collector.post({"events": sends}).status_code == 200
    attackers = hashing.email_hash(HASH_KEY.encode(), attacker)

    dry = erase_cli(local_bigquery, tmp_path, "--email", attacker, "--dry-run")
    assert f"ambiguous client id {shared} (seen with 2 e-mail hashes): skipped" in dry.stdout
    assert "events: 2 rows would be deleted" in dry.stdout  # the attacker's own rows only

    done = erase_cli(local_bigquery, tmp_path, "--email", attacker)
    assert f"ambiguous client id {shared}" in done.stdout and "skipped" in done.stdout
    left = local_bigquery.events("bot_id = @tag", tag=tag)
    assert [(r["client_id"], r["email_hash"]) for r in left] == [
        (shared, hashing.email_hash(HASH_KEY.encode(), victim)),
        (shared, None),
    ]
    assert attackers not in json.dumps(left, default=str)
    [audit] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert audit["ambiguous_skipped"] == 1

    assert collector.post(sends[2]).status_code == 200  # the claim again: ambiguous again
    named = erase_cli(local_bigquery, tmp_path, "--email", attacker, "--client-id", shared)
    assert f"ambiguous client id {shared} (seen with 2 e-mail hashes): erased, it was named" in named.stdout
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []


def test_an_ambiguous_id_is_named_explicitly_without_an_address(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    shared = f"c-{tag}"
    sends = [
        {"event": "sign_in", "bot_id": tag, "client_id": shared, "detail": {"email": f"{n}.{tag}@example.com"}}
        for n in ("one", "two")
    ]
    assert collector.post({"events": sends}).status_code == 200
    done = erase_cli(local_bigquery, tmp_path, "--client-id", shared)
    assert "erased, it was named" in done.stdout and "events: 2 rows deleted" in done.stdout
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []


# ------------------------------------------------------------------------------------- the deployed key


@pytest.mark.parametrize("who", [("--email", "nobody@example.com"), ("--client-id", "c-1")])
def test_no_key_no_run(collector: Collector, local_bigquery: LocalBigQuery, tag: str, who: tuple[str, str]) -> None:
    assert collector.post({"event": "open", "bot_id": tag, "client_id": "c-1"}).status_code == 200
    env = {k: v for k, v in os.environ.items() if k not in ("PII_HASH_KEY", "BIGQUERY_API_ENDPOINT")}
    result = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "erase", *who, "--bigquery-port", str(local_bigquery.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "PII_HASH_KEY" in result.stderr and "--cloud" in result.stderr
    assert "deleted" not in result.stdout
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == 1


def test_a_key_is_never_made_up() -> None:
    with pytest.raises(erase.MissingKey, match="PII_HASH_KEY"):
        erase.resolve_key(None, False, lambda: b"unused")
    with pytest.raises(erase.MissingKey, match="empty"):
        erase.resolve_key(None, True, lambda: b"")
    assert erase.resolve_key("k", True, lambda: b"from-secret") == b"k"
    assert erase.resolve_key(None, True, lambda: b"from-secret") == b"from-secret"


# -------------------------------------------------------------------------- one hash, collector and erase


def test_what_the_collector_stores_is_what_erase_computes(
    collector: Collector, local_bigquery: LocalBigQuery, tag: str, tmp_path: Path
) -> None:
    typed = f" Jane.{tag}@Example.COM "  # as a form sends it: case and spaces
    as_id = f"jane.{tag}@example.com"  # a site whose client id is the address
    sends = [
        {"event": "sign_in", "bot_id": tag, "client_id": f"c-{tag}", "detail": {"email": typed}},
        {"event": "open", "bot_id": tag, "client_id": as_id, "session_id": as_id},
    ]
    assert collector.post({"events": sends}).status_code == 200
    signed, anonymous = local_bigquery.events("bot_id = @tag", tag=tag)
    key = HASH_KEY.encode()
    assert erase.keyed_hash is hashing.email_hash and erase.pseudonyms is hashing.email_pseudonyms
    assert signed["email_hash"] == erase.keyed_hash(key, as_id) == erase.keyed_hash(key, typed)
    assert anonymous["client_id"] == anonymous["session_id"] == hashing.pseudonym(key, as_id)
    assert anonymous["client_id"] in erase.pseudonyms(key, as_id)
    assert anonymous["client_id"] in erase.named_pseudonyms(key, [as_id])

    dry = erase_cli(local_bigquery, tmp_path, "--email", as_id, "--dry-run")
    assert "events: 2 rows would be deleted" in dry.stdout
