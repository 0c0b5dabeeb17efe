"""The incremental refresh of the analyst tables in the local BigQuery: late events, sessions across midnight,
copies, and a second run that changes nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from loyjoy_collector import __version__
from loyjoy_collector.ops.cli import local_env
from loyjoy_collector.ops.refresh import MODELS, built
from loyjoy_collector.privacy.keys import Scrubber
from loyjoy_collector.protocol import LoyJoyEvent
from loyjoy_collector.rows import RequestContext, event_row
from loyjoy_collector.settings import Settings

from .conftest import PROJECT

DATASET = "refresh_test"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(scope="module")
def env(local_bigquery):
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": DATASET}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    return environment


def refresh(env, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def send(
    local_bigquery, events: list[tuple[str, datetime, str]], copies: int = 0, user_agent: str = CHROME
) -> list[str]:
    """Rows as the collector writes them, received now: (event name, event time, session id)."""
    now = datetime.now(UTC)
    settings, scrubber, rows = Settings(bq_dataset=DATASET), Scrubber(b"k"), []
    for name, ts, session in events:
        raw = {
            "event": name,
            "ts": ts.isoformat(),
            "sent_at": ts.isoformat(),
            "session_id": session,
            "client_id": "c-" + session,
            "bot_id": "b-refresh",
            "process_id": "p-1",
            "event_id": uuid.uuid4().hex,
        }
        ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, user_agent, None, None)
        row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, settings, scrubber)
        rows.append(row | {"received_at": now.isoformat().replace("+00:00", "Z")})
    rows += rows[:copies]  # the snippet sent these again
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{DATASET}.events", rows) == []
    return [row["event_id"] for row in rows]


def table(local_bigquery, name: str, where: str = "TRUE") -> list[dict]:
    return local_bigquery.query(f"SELECT * FROM `{PROJECT}.{DATASET}.{name}` WHERE {where} ORDER BY 1, 2, 3")


BUILT = built()  # without LoyJoy's export or GA4's: not loyjoy_reconciliation, not the GA4 tables


def snapshot(local_bigquery) -> dict[str, list[str]]:
    return {name: sorted(repr(sorted(row.items())) for row in table(local_bigquery, name)) for name in BUILT}


def test_incremental_refresh_late_events_midnight_sessions_and_a_second_run(env, local_bigquery):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight = f"s-{uuid.uuid4().hex[:8]}"
    send(
        local_bigquery,
        [
            ("load", today - timedelta(minutes=4), midnight),  # yesterday 23:56
            ("show", today - timedelta(minutes=3), midnight),
            ("open", today - timedelta(minutes=2), midnight),
            ("session_started", today - timedelta(minutes=1), midnight),
            ("sign_up", today + timedelta(minutes=1), midnight),  # today 00:01: the same session
            ("load", today + timedelta(hours=9), "s-other"),
        ],
        copies=2,
    )
    first = refresh(env)
    assert "rebuilt 2 event days" in first
    [session] = table(local_bigquery, "sessions", f"session_id = '{midnight}'")
    assert (session["events"], session["day"], session["outcome"]) == (
        5,
        (today - timedelta(days=1)).date(),
        "signed_up",
    )
    clean = local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events_clean`")[0]["n"]
    raw = local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events`")[0]["n"]
    assert (clean, raw) == (6, 8)  # the copies count once

    before = snapshot(local_bigquery)
    refresh(env)  # nothing new: the window is what the lookback covers, rebuilt to the same numbers
    assert snapshot(local_bigquery) == before

    # A queue that waited ten days in a browser, and a late event of the midnight session.
    late_day = today - timedelta(days=10)
    send(
        local_bigquery,
        [("load", late_day + timedelta(hours=12), "s-late"), ("close", today + timedelta(minutes=5), midnight)],
    )
    third = refresh(env)
    assert f"to {today.date()}" in third and str(late_day.date()) in third
    counts = {(r["day"], r["event_name"]): r["events"] for r in table(local_bigquery, "daily_counts")}
    assert counts[(late_day.date(), "load")] == 1
    [session] = table(local_bigquery, "sessions", f"session_id = '{midnight}'")
    assert (session["events"], session["closed"]) == (6, True)  # rebuilt whole, still one row
    funnel = {r["day"]: r for r in table(local_bigquery, "funnel_daily")}
    assert funnel[(today - timedelta(days=1)).date()]["signed_up"] == 1
    manifest = local_bigquery.query(
        f"SELECT * FROM `{PROJECT}.{DATASET}.refresh_manifest` ORDER BY run_at DESC LIMIT 1"
    )
    assert late_day.date() in manifest[0]["days"]


def test_a_full_refresh_gives_the_same_tables_as_the_increments(env, local_bigquery):
    before = snapshot(local_bigquery)
    assert "rebuilt" in refresh(env, "--full")
    assert snapshot(local_bigquery) == before


def counted(local_bigquery, bots: list[str], day: datetime) -> dict[str, int]:
    """How many rows of the bot sessions each analyst table holds (they are alone on `day`)."""
    ids = ", ".join(f"'{session}'" for session in bots)
    return {
        "events": table_count(local_bigquery, "events", f"session_id IN ({ids})"),
        "events_clean": table_count(local_bigquery, "events_clean", f"session_id IN ({ids})"),
        "sessions": table_count(local_bigquery, "sessions", f"session_id IN ({ids})"),
        "daily_counts": sum(r["events"] for r in table(local_bigquery, "daily_counts", f"day = '{day.date()}'")),
    }


def table_count(local_bigquery, name: str, where: str) -> int:
    return local_bigquery.query(f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.{name}` WHERE {where}")[0]["n"]


def test_bots_are_stored_but_left_out_unless_the_switch_brings_them_back(env, local_bigquery):
    """Default: bots in `events` only. --include-bots counts them everywhere, a later run without the flag keeps
    that choice, and --exclude-bots takes them out again, the sessions and funnel days they made included."""
    now = datetime.now(UTC) - timedelta(minutes=30)
    old_day = now - timedelta(days=5)  # a day no new visitor row touches: only a whole rebuild changes it
    visitors_before = snapshot(local_bigquery)
    bots = {"s-curl": "curl/8.5.0", "s-headless": HEADLESS, "s-googlebot": GOOGLEBOT}
    for session, agent in bots.items():
        send(
            local_bigquery,
            [("load", old_day, session), ("open", old_day + timedelta(seconds=5), session)],
            user_agent=agent,
        )
    # A row written before the is_bot column existed: ua-parser's device_type is what says it is a bot.
    [old_id] = send(local_bigquery, [("load", old_day, "s-old-crawler")], user_agent=GOOGLEBOT)
    local_bigquery.query(f"UPDATE `{PROJECT}.{DATASET}.events` SET is_bot = NULL WHERE event_id = @id", id=old_id)
    sessions = [*bots, "s-old-crawler"]
    stored = local_bigquery.query(
        f"SELECT DISTINCT session_id, is_bot, device_type FROM `{PROJECT}.{DATASET}.events` "
        f"WHERE session_id IN UNNEST(@s)",
        s=sessions,
    )
    assert {(r["session_id"], r["is_bot"], r["device_type"]) for r in stored} == {
        ("s-curl", True, "bot"),
        ("s-headless", True, "bot"),
        ("s-googlebot", True, "bot"),
        ("s-old-crawler", None, "bot"),
    }

    assert "bots left out" in refresh(env)
    assert counted(local_bigquery, sessions, old_day) == {
        "events": 7,
        "events_clean": 0,
        "sessions": 0,
        "daily_counts": 0,
    }
    left_out = snapshot(local_bigquery)
    for name in ("events_clean", "sessions", "daily_counts", "funnel_daily", "opt_ins"):
        assert left_out[name] == visitors_before[name], name  # not one number moved

    assert "bots included" in refresh(env, "--include-bots")
    assert counted(local_bigquery, sessions, old_day) == {
        "events": 7,
        "events_clean": 7,
        "sessions": 4,
        "daily_counts": 7,
    }
    funnel = {r["day"]: r for r in table(local_bigquery, "funnel_daily")}
    assert funnel[old_day.date()]["sessions"] == 4
    manifest = local_bigquery.query(
        f"SELECT bots_included FROM `{PROJECT}.{DATASET}.refresh_manifest` ORDER BY run_at DESC LIMIT 1"
    )
    assert manifest == [{"bots_included": True}]
    included = snapshot(local_bigquery)
    assert "bots included" in refresh(env)  # no flag: as the last run did
    assert snapshot(local_bigquery) == included

    assert "bots left out" in refresh(env, "--exclude-bots")
    assert snapshot(local_bigquery) == left_out  # the bot sessions and the funnel day they made are gone again
    assert "bots left out" in refresh(env, "--full")
    assert snapshot(local_bigquery) == left_out


def test_a_table_built_before_is_bot_gains_it_and_the_first_run_rebuilds_everything(local_bigquery):
    """An upgrade: bootstrap (or Terraform) adds the columns to `events` and the manifest; events_clean and the
    manifest's rows have none. The next run adds it to events_clean and, the last choice unknown, rebuilds all."""
    from google.cloud import bigquery

    from loyjoy_collector.schema import tables

    dataset = "refresh_upgrade"
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": dataset}
    local_bigquery.client.create_dataset(f"{PROJECT}.{dataset}", exists_ok=True)
    for name, new in (("events", "is_bot"), ("refresh_manifest", "bots_included")):  # as the last version made them
        spec = tables()[name]
        old = [bigquery.SchemaField.from_api_repr(f) for f in spec.fields if f["name"] != new]
        table = bigquery.Table(f"{PROJECT}.{dataset}.{name}", schema=old)
        table.time_partitioning = bigquery.TimePartitioning(field=spec.partition_field)
        local_bigquery.client.create_table(table)
    booted = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"], env=environment, capture_output=True, text=True
    )
    assert booted.returncode == 0, booted.stderr[-3000:]
    assert "events: added is_bot" in booted.stdout and "refresh_manifest: added bots_included" in booted.stdout
    old_day = datetime.now(UTC) - timedelta(days=7)
    rows = []
    for agent in ("curl/8.5.0", CHROME):
        ctx = RequestContext(old_day, "POST", "/", "", "text/plain", None, agent, None, None)
        raw = {"event": "load", "ts": old_day.isoformat(), "session_id": "s-up", "event_id": uuid.uuid4().hex}
        rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=dataset), Scrubber(b"k")))
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    clean = f"`{PROJECT}.{dataset}.events_clean`"
    columns = ", ".join(name for name in rows[0] if name != "is_bot")
    local_bigquery.query(f"DROP TABLE {clean}")
    local_bigquery.query(
        f"CREATE TABLE {clean} PARTITION BY DATE(event_ts) AS SELECT {columns} FROM `{PROJECT}.{dataset}.events`"
    )  # the old refresh counted the curl row
    local_bigquery.query(
        f"INSERT INTO `{PROJECT}.{dataset}.refresh_manifest` (run_at, watermark, days, session_days, rejected_days)"
        " VALUES (CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP(), [], [], [])"
    )  # an old run: bots_included unknown
    done = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh"],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "rebuilt 1 event days" in done.stdout and "bots left out" in done.stdout
    kept = local_bigquery.query(f"SELECT is_bot, device_type, browser, collector_version FROM {clean}")
    assert kept == [{"is_bot": False, "device_type": "desktop", "browser": "Chrome", "collector_version": __version__}]


DELIVERY_COLUMNS = ("client_seq", "dropped_overflow", "dropped_quota", "dropped_consent", "delivered_later_page")


def test_an_events_clean_built_before_the_delivery_columns_gains_them_by_name(local_bigquery):
    """An upgrade: `events` has the snippet's delivery columns where the schema file puts them (in the middle),
    events_clean, built by the last version, has none; the next run adds them at its end and fills them by name."""
    dataset = "refresh_delivery_upgrade"
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": dataset}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    day = datetime.now(UTC) - timedelta(days=2)
    rows = []
    for seq in (1, 2, 5):
        ctx = RequestContext(day, "POST", "/", "", "text/plain", None, CHROME, None, None)
        raw = {
            "event": "load",
            "ts": (day + timedelta(seconds=seq)).isoformat(),
            "client_id": "c-up",
            "seq": seq,
            "later_page": seq == 5,
            "dropped": {"overflow": 3} if seq == 5 else None,
            "event_id": uuid.uuid4().hex,
        }
        rows.append(event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=dataset), Scrubber(b"k")))
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    clean = f"`{PROJECT}.{dataset}.events_clean`"
    columns = ", ".join(name for name in rows[0] if name not in DELIVERY_COLUMNS)
    local_bigquery.query(f"DROP TABLE {clean}")
    local_bigquery.query(
        f"CREATE TABLE {clean} PARTITION BY DATE(event_ts) AS SELECT {columns} FROM `{PROJECT}.{dataset}.events`"
    )  # what the last version's refresh built
    done = subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh", "--full"],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kept = local_bigquery.query(
        f"SELECT client_seq, dropped_overflow, delivered_later_page, browser FROM {clean} ORDER BY client_seq"
    )
    assert kept == [
        {"client_seq": 1, "dropped_overflow": None, "delivered_later_page": False, "browser": "Chrome"},
        {"client_seq": 2, "dropped_overflow": None, "delivered_later_page": False, "browser": "Chrome"},
        {"client_seq": 5, "dropped_overflow": 3, "delivered_later_page": True, "browser": "Chrome"},
    ]
    [health] = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.delivery_health`")
    assert (health["events_received"], health["seq_gaps"], health["dropped_overflow"]) == (3, 2, 3)


def test_each_analyst_table_is_partitioned_and_clustered_as_its_models_header_says(env, local_bigquery):
    """The header of models/<table>.sql is the one place for its partitioning, clustering and replaced rows: the
    script creates the table so (the local BigQuery keeps a partitioning by a DATE column, not by DATE(timestamp),
    and no clustering) and deletes the rows the header names before it inserts the run's."""
    from loyjoy_collector.ops.refresh import model_sql, script, settings

    sql = script(PROJECT, DATASET, loyjoy_export_dataset="loyjoy_export")
    for name in MODELS:
        header = settings(model_sql(name).replace("${project}.${dataset}", f"{PROJECT}.{DATASET}"))
        assert set(header) == {"partition_by", "cluster_by", "replaces"}, name
        table_id = f"`{PROJECT}.{DATASET}.{name}`"
        created = f"CREATE TABLE IF NOT EXISTS {table_id} PARTITION BY {header['partition_by']} CLUSTER BY "
        assert sql.count(created + header["cluster_by"] + "\n") == 1, name
        assert sql.count(f"DELETE FROM {table_id} WHERE {header['replaces']};") == 1, name
        if name in BUILT and "(" not in header["partition_by"]:
            made = local_bigquery.client.get_table(f"{PROJECT}.{DATASET}.{name}").time_partitioning
            assert (made.type_, made.field) == ("DAY", header["partition_by"]), name


def test_a_failing_table_fails_alone_and_its_days_are_retried_by_the_next_run(local_bigquery):
    """One table's step fails (here daily_counts, replaced by a table of another shape, as a schema drift or a
    sum that overflows would make it fail): the run still builds every other table, writes its manifest row with
    the failure and the days to retry, moves its watermark on, and then fails, so that the scheduled query's
    failure raises the alert. Once the cause is gone, the next run rebuilds those days, though nothing new came."""
    dataset = "refresh_isolation"
    environment = local_env(local_bigquery.port, "") | {"BQ_DATASET": dataset}
    subprocess.run(
        [sys.executable, "-m", "loyjoy_collector.ops.cli", "bootstrap"],
        env=environment,
        check=True,
        capture_output=True,
    )
    day = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = []
    for n, name in enumerate(("load", "show", "open", "session_started", "sign_up")):
        ts = day + timedelta(minutes=n)
        raw = {"event": name, "ts": ts.isoformat(), "session_id": "s-iso", "event_id": uuid.uuid4().hex}
        ctx = RequestContext(ts, "POST", "/", "", "text/plain", None, CHROME, None, None)
        row = event_row(LoyJoyEvent.model_validate(raw), raw, ctx, Settings(bq_dataset=dataset), Scrubber(b"k"))
        rows.append(row | {"received_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    assert local_bigquery.client.insert_rows_json(f"{PROJECT}.{dataset}.events", rows) == []
    counts = f"`{PROJECT}.{dataset}.daily_counts`"
    local_bigquery.query(f"DROP TABLE {counts}")
    local_bigquery.query(f"CREATE TABLE {counts} (day DATE, drifted STRING)")  # another shape: its insert fails

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loyjoy_collector.ops.cli", "refresh"],
            env=environment,
            capture_output=True,
            text=True,
        )

    def manifest() -> dict:
        return local_bigquery.query(
            f"SELECT * FROM `{PROJECT}.{dataset}.refresh_manifest` ORDER BY watermark DESC LIMIT 1"
        )[0]

    before = manifest()["watermark"]
    failed = run()
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "failed: daily_counts:" in failed.stderr and "retried by the next refresh" in failed.stdout
    [session] = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.sessions`")
    assert (session["events"], session["outcome"]) == (5, "signed_up")  # built after the failed step
    [funnel] = local_bigquery.query(f"SELECT * FROM `{PROJECT}.{dataset}.funnel_daily`")
    assert (funnel["day"], funnel["signed_up"]) == (day.date(), 1)
    written = manifest()
    assert written["watermark"] > before  # the watermark moved on
    assert [f.split(":")[0] for f in written["failures"]] == ["daily_counts"]
    assert written["pending_days"] == [day.date()] and written["pending_rejected_days"] == []

    local_bigquery.query(f"DROP TABLE {counts}")  # the cause is gone
    retried = run()
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert "rebuilt 1 event days" in retried.stdout  # nothing new arrived: the pending day
    built = local_bigquery.query(f"SELECT day, event_name, events FROM {counts} ORDER BY event_name")
    assert [(r["day"], r["event_name"], r["events"]) for r in built] == [
        (day.date(), name, 1) for name in ("load", "open", "session_started", "show", "sign_up")
    ]
    assert (manifest()["failures"], manifest()["pending_days"]) == ([], [])


def test_the_queue_bound_and_the_session_pause_come_from_the_snippet_itself():
    """The refresh reads the snippet's maxQueue and session timeout from the build browsers get; that build holds
    what snippet/src says (a changed constant there changes the analyst tables' bounds with the next build)."""
    import re
    from pathlib import Path

    from loyjoy_collector.ops.refresh import SnippetBounds, snippet_bounds

    source = (Path(__file__).resolve().parents[1] / "snippet" / "src" / "loyjoy-collector.js").read_text()
    [queue] = re.findall(r"\bmaxQueue: (\d+),", source)
    [timeout] = re.findall(r"var SESSION_TIMEOUT_MS = ([\d *]+);", source)
    factors = [int(factor) for factor in timeout.split("*")]
    assert snippet_bounds() == SnippetBounds(int(queue), factors[0] * factors[1] * factors[2])
    assert snippet_bounds() == SnippetBounds(500, 30 * 60 * 1000)


def test_the_statements_that_read_ga4_export_are_literal_text_within_bigquerys_size():
    """The two statements that read GA4's export run by EXECUTE IMMEDIATE with the run's tables written into them.
    BigQuery runs such a statement apart from the script, so it may name no script variable (it is all literals:
    were it not, the local BigQuery, which lets it read them, would not tell); and with as many tables as one
    statement may be given, written as the longest suffixes (intraday ones), it stays far within BigQuery's 1 MB
    of query text."""
    import re
    from datetime import date

    from loyjoy_collector.ops.refresh import script

    most = Settings.model_fields["ga4_tables_per_read"].metadata
    per_read = max(getattr(bound, "le", 0) or 0 for bound in most)
    sql = script(PROJECT, DATASET, ga4_export_dataset="analytics_123", ga4_tables_per_read=per_read)
    texts = re.findall(r"EXECUTE IMMEDIATE REPLACE\(\s*r'''(.*?)''',\s*'\{\{ga4_suffixes\}\}', ga4_tables", sql, re.S)
    assert len(texts) == 2 and all("{{ga4_suffixes}}" in text for text in texts)
    declared = {name.lower() for name in re.findall(r"(?im)^\s*DECLARE\s+(\w+)", sql)}
    assert {"ga4_suffixes", "ga4_days", "ga4_first", "ga4_conversion_events"} <= declared
    suffixes = ", ".join(f"'intraday_{date(2020, 1, 1) + timedelta(days=k):%Y%m%d}'" for k in range(per_read))
    for text in texts:
        code = re.sub(r"--[^\n]*", "", text)
        code = re.sub(r"`[^`]*`|'[^']*'|\{\{ga4_suffixes\}\}", "", code)  # names, literals, the slot
        assert not {word.lower() for word in re.findall(r"[A-Za-z_]\w*", code)} & declared, code
        assert "events_*" in text and "_TABLE_SUFFIX IN ({{ga4_suffixes}})" in text
        assert len(text.replace("{{ga4_suffixes}}", suffixes).encode()) < 64 * 1024  # BigQuery's limit: 1 MB
