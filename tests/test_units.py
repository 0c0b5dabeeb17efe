"""The pure parts, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from loyjoy_collector import catalog, schema
from loyjoy_collector.cors import origin_allowed
from loyjoy_collector.enrich import parse_user_agent, reconcile_clock
from loyjoy_collector.privacy.ip import truncate_ip
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.privacy.tally import Tally
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row, rejected_row
from loyjoy_collector.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_legacy_names_map_to_current_ones():
    assert catalog.normalise("signin") == ("sign_in", True)
    assert catalog.normalise("newsletter_opt_in") == ("newsletter_single_opt_in", True)
    assert catalog.normalise("reminder_opt_in") == ("reminder_single_opt_in", True)
    assert catalog.normalise("jump_persistent_5") == ("jump_persistent_5", True)
    assert catalog.normalise("jump_persistent_6") == ("jump_persistent_6", False)
    assert catalog.normalise("my_custom") == ("my_custom", False)


def test_scrubber_keeps_allowed_keys_only():
    scrubber = Scrubber(b"k", frozenset({"city", "quiz_*"}))
    tally = Tally()
    clean = scrubber.scrub(
        {
            "Token": "x",
            "E-Mail": "A@B.de",
            "firstName": "Jane",
            "vorname": "Erika",
            "city": "Berlin",
            "quiz_answer_3": "b",
            "label": "write to jane@example.org",
            "list": [1],
            "events": [{"password": "p", "label": "ok", "telefon": "0170 1234567"}],
        },
        tally,
    )
    assert clean == {
        "email_hash": scrubber.hash_email("a@b.de"),
        "city": "Berlin",
        "quiz_answer_3": "b",
        "label": "write to jane@example.org",  # strings are the gate's job
        "events": [{"label": "ok"}],
    }
    assert sorted(tally.dropped_keys) == ["Token", "firstName", "list", "password", "telefon", "vorname"]
    assert Scrubber(None).scrub({"email": "a@b.de"}, Tally()) == {}


def test_ip_truncation():
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("not an ip") is None


def test_origin_patterns():
    allowed = ("https://shop.example.com", "https://*.example.org")
    assert origin_allowed("https://shop.example.com", allowed)
    assert origin_allowed("https://a.b.example.org", allowed)
    assert origin_allowed("https://example.org", allowed)
    assert not origin_allowed("http://a.example.org", allowed)
    assert not origin_allowed("https://evilexample.org", allowed)
    assert origin_allowed("https://anything.test", ("*",))


def test_clock_reconciliation():
    max_age, max_future = timedelta(days=28), timedelta(minutes=5)
    plain = reconcile_clock(NOW, NOW - timedelta(seconds=3), None, max_age=max_age, max_future=max_future)
    assert plain.event_ts == NOW - timedelta(seconds=3) and plain.flags == ()
    skewed = reconcile_clock(
        NOW, NOW + timedelta(days=1), NOW + timedelta(days=1, seconds=2), max_age=max_age, max_future=max_future
    )
    assert skewed.event_ts == NOW - timedelta(seconds=2)
    assert skewed.skew_ms == -(86_402_000) and skewed.flags == ("client_clock_skewed",)
    ancient = reconcile_clock(NOW, datetime(1, 1, 1, tzinfo=UTC), NOW, max_age=max_age, max_future=max_future)
    assert ancient.event_ts == NOW and "client_ts_too_old" in ancient.flags


def test_user_agent_classes():
    assert parse_user_agent("", server_side=True).device_type is None  # an sGTM container that sent none
    assert (parse_user_agent("").device_type, parse_user_agent("").is_bot) == ("bot", True)  # test_bots.py
    ipad = parse_user_agent(
        "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
        "Mobile/15E148 Safari/604.1"
    )
    assert (ipad.os, ipad.device_type) == ("iOS", "tablet")
    desktop = parse_user_agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    )
    assert (desktop.browser, desktop.os, desktop.device_type) == ("Chrome", "Windows", "desktop")
    bot = parse_user_agent("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    assert bot.device_type == "bot"


def test_settings_read_comma_lists(monkeypatch):
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.test, https://b.test")
    monkeypatch.setenv("PII_ALLOWED_KEYS", "city")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-1")
    settings = Settings()
    assert settings.allowed_origins == ("https://a.test", "https://b.test")
    assert settings.pii_allowed_keys == ("city",)
    assert settings.project == "proj-1" and settings.bq_dataset == "loyjoy"


CTX = RequestContext(NOW, "POST", "/", "", "text/plain", None, "", "198.51.100.1", None)


def test_rows_match_the_schema_files_exactly():
    settings = Settings()
    row = event_row(LoyJoyEvent(event="open"), {"event": "open"}, CTX, settings, Scrubber(None))
    assert list(row) == schema.tables()["events"].field_names
    rejected = rejected_row(
        CTX, Scrubber(None), reason="r", detail="d", status=400, protocol=None, payload="x", raw_bytes=1
    )
    assert list(rejected) == schema.tables()["events_rejected"].field_names
    for spec in schema.tables().values():
        names = spec.field_names
        assert spec.partition_field in names and set(spec.clustering) <= set(names)
        if spec.name in ("events", "events_rejected"):  # the rows the collector writes
            required = [f["name"] for f in spec.fields if f["mode"] == "REQUIRED"]
            sample = row if spec.name == "events" else rejected
            assert all(sample[name] is not None for name in required)


def test_openapi_documents_every_event_field():
    document = yaml.safe_load((Path(schema.__file__).parent / "openapi.yaml").read_text())
    documented = set(document["components"]["schemas"]["Event"]["properties"])
    assert documented == set(LoyJoyEvent.model_fields)


@pytest.mark.parametrize("value", [True, "tomorrow", "2026-13-01T00:00:00Z", 1e30])
def test_bad_timestamps_are_refused(value):
    with pytest.raises(ValueError, match="ts"):
        LoyJoyEvent.model_validate({"event": "open", "ts": value})


def run_alone(coroutine):
    """On an event loop of its own thread: a browser test's driver may have left one running in this thread."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_group_commit_shares_calls_and_maps_errors_back():
    import asyncio
    from dataclasses import dataclass

    from loyjoy_collector.group_commit import GroupCommit

    @dataclass
    class Error:
        index: int
        message: str

    calls: list[list[str]] = []

    async def send(rows, ids):
        calls.append(ids)
        await asyncio.sleep(0.05)  # a call on the wire: others gather meanwhile
        return [Error(i, f"bad {row['n']}") for i, row in enumerate(rows) if row["n"] % 5 == 0]

    async def main() -> dict[int, list]:
        group = GroupCommit(max_rows=500)

        async def request(k: int) -> list:
            await asyncio.sleep(0.002 * k)  # arriving one after the other
            rows = [{"n": 2 * k}, {"n": 2 * k + 1}]
            return await group.insert("events", rows, [f"id{2 * k}", f"id{2 * k + 1}"], send)

        answers = await asyncio.gather(*(request(k) for k in range(20)))
        return dict(enumerate(answers))

    results = run_alone(main())
    sent = [row_id for call in calls for row_id in call]
    assert sorted(sent) == sorted(f"id{n}" for n in range(40))  # every row once
    assert 1 < len(calls) < 10  # shared calls, not one per request (the first one left at once)
    assert calls[0] == ["id0", "id1"]
    for k, errors in results.items():
        expected = [(i, f"bad {2 * k + i}") for i in (0, 1) if (2 * k + i) % 5 == 0]
        assert [(e.index, e.message) for e in errors] == expected


def test_group_commit_failure_reaches_every_waiter_of_that_call_and_rows_go_alone_when_told():
    import asyncio

    from loyjoy_collector.group_commit import GroupCommit

    class Refused(Exception):
        pass

    alone_calls: list[list[str]] = []

    async def timeout(rows, ids):
        raise TimeoutError("BigQuery timed out")

    async def refuse(rows, ids):
        await asyncio.sleep(0.02)
        raise Refused("a row BigQuery refuses")

    async def alone(rows, ids):
        alone_calls.append(ids)
        return []

    async def main() -> list:
        group = GroupCommit()
        with pytest.raises(TimeoutError):
            await group.insert("events", [{"n": 1}], ["a"], timeout, alone, split_on=(Refused,))
        with pytest.raises(Refused):  # no `alone`: the failure is the answer
            await group.insert("events", [{"n": 1}], ["a"], refuse)
        return await asyncio.gather(
            *(group.insert("events", [{"n": k}], [f"r{k}"], refuse, alone, split_on=(Refused,)) for k in range(3))
        )

    assert run_alone(main()) == [[], [], []]
    assert sorted(alone_calls) == [["r0"], ["r1"], ["r2"]]  # each request's rows on their own


def test_the_one_keyed_hash_is_hmac_sha256_of_the_normalised_address():
    """The collector, erasure and the tests share `privacy.hashing`; this pins it to the algorithm the README
    documents, computed here independently, so that a change to it cannot pass unnoticed."""
    import hashlib
    import hmac

    from loyjoy_collector.privacy import hashing

    key = b"deployed-key"
    expected = hmac.new(key, b"jane.doe@example.com", hashlib.sha256).hexdigest()
    assert hashing.email_hash(key, "  Jane.Doe@Example.com ") == expected
    assert hashing.pseudonym(key, "x") == "pii-" + hmac.new(key, b"x", hashlib.sha256).hexdigest()[:32]
