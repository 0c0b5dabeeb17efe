"""What a Looker Studio report costs as history grows: the first version's views against the analyst tables.

Seeds a year of chat events into the local BigQuery (1.2 M by default: copies from senders' retries and events
that arrived days late included), builds the analyst tables, and runs what a typical report runs for "the last
30 days" — the funnel, daily counts, sessions by source — on the old views (bench/old_views: a dedup window over
all of `events`) and on the new tables. Then doubles the history (a year before) and measures again.

The local BigQuery reports no bytes processed, so bytes are estimated the way BigQuery bills on demand: the
columns a query references (views included), times the rows of the partitions it cannot prune, at BigQuery's
sizes (STRING 2 + UTF-8 bytes, INT64/FLOAT64/TIMESTAMP/DATE 8, BOOL 1, JSON its text), with 10 MB minimum per
table referenced. A filter on `day` prunes a table partitioned by day; a filter above a window over `event_id`
(the old events_dedup) prunes nothing. Wall times are the local BigQuery's (DuckDB), for the ratio only.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loyjoy_collector.ops.cli import local_env, start_local_bigquery
from loyjoy_collector.ops.refresh import refresh, script
from loyjoy_collector.settings import Settings
from loyjoy_collector.sink import BigQuerySink

ROOT = Path(__file__).resolve().parent.parent
PER_YEAR = int(os.environ.get("BENCH_EVENTS_PER_YEAR", "1200000"))
PORT = int(os.environ.get("BENCH_BIGQUERY_PORT", "9071"))
DATASET = "bench_analytics"
MIN_BILLED = 10 * 1024**2
TIB = 1024**4
PRICE_PER_TIB = 6.25  # USD, on-demand queries
EVENTS_PER_SESSION = 8

# (report query, old-view SQL, new-table SQL, what each reads: table -> columns)
QUERIES = {
    "funnel, last 30 days": (
        "SELECT SUM(loaded) l, SUM(shown) s, SUM(opened) o, SUM(started) st, SUM(signed_up) su, SUM(opted_in) oi "
        "FROM `{d}.{t}` WHERE day >= DATE_SUB(@today, INTERVAL 30 DAY)",
        "old_funnel_daily",
        "funnel_daily",
        {
            "events": [
                "event_id",
                "received_at",
                "session_id",
                "client_id",
                "bot_id",
                "process_id",
                "process_name",
                "event_ts",
                "event_name",
            ]
        },
        {"funnel_daily": ["day", "loaded", "shown", "opened", "started", "signed_up", "opted_in"]},
    ),
    "daily counts, last 30 days": (
        "SELECT day, SUM(events) e, SUM(sessions) s FROM `{d}.{t}` WHERE day >= DATE_SUB(@today, INTERVAL 30 DAY) "
        "GROUP BY day",
        "old_daily_counts",
        "daily_counts",
        {
            "events": [
                "event_id",
                "received_at",
                "event_ts",
                "bot_id",
                "process_id",
                "process_name",
                "event_name",
                "event_known",
                "session_id",
                "client_id",
            ]
        },
        {"daily_counts": ["day", "events", "sessions"]},
    ),
    "sessions by source, last 30 days": (
        "SELECT utm_source, COUNT(*) n FROM `{d}.{t}` WHERE day >= DATE_SUB(@today, INTERVAL 30 DAY) GROUP BY 1",
        "old_sessions",
        "sessions",
        {"events": ["event_id", "received_at", "session_id", "event_ts", "utm_source"]},
        {"sessions": ["day", "utm_source"]},
    ),
}
PARTITION = {"events": "DATE(event_ts)", "funnel_daily": "day", "daily_counts": "day", "sessions": "day"}


def seed(client: Any, table: str, first_day_ago: int, days: int, events: int, today: str) -> None:
    """`events` events over `days` days ending `first_day_ago` days before today: sessions of 8 events, 3 %
    received 3 days late, then 5 % sent twice (a retry: same event_id, received 30 s later)."""
    names = "['load','show','open','session_started','start','sign_up','newsletter_single_opt_in','close']"
    spacing = days * 86400 / (events / EVENTS_PER_SESSION)
    client.query(f"""
INSERT INTO `{table}` (event_id, event_name, event_name_raw, event_known, event_ts, received_at, protocol,
  consent_analytics, collector_version, session_id, client_id, bot_id, process_id, process_name, utm_source,
  utm_medium, device_type, page_hostname, page_location, quality_flags)
SELECT CONCAT('e-{first_day_ago}-', CAST(n AS STRING)), {names}[OFFSET(MOD(n, 8))], {names}[OFFSET(MOD(n, 8))], TRUE,
  ts, IF(MOD(n, 33) = 0, TIMESTAMP_ADD(ts, INTERVAL 3 DAY), TIMESTAMP_ADD(ts, INTERVAL 1 SECOND)),
  'loyjoy', 'granted', '0.1.0', CONCAT('s-{first_day_ago}-', CAST(DIV(n, 8) AS STRING)),
  CONCAT('c-{first_day_ago}-', CAST(DIV(n, 24) AS STRING)), 'bot-1', CONCAT('p-', CAST(MOD(DIV(n, 8), 3) AS STRING)),
  'Gewinnspiel Herbst', ['google', 'newsletter', 'direct'][OFFSET(MOD(DIV(n, 8), 3))], 'cpc', 'desktop',
  'shop.example.com', 'https://shop.example.com/produkte/kaffeemaschinen?utm_source=google', []
FROM (
  SELECT n, TIMESTAMP_ADD(TIMESTAMP_SUB(TIMESTAMP '{today} 23:00:00+00', INTERVAL {first_day_ago + days} DAY),
    INTERVAL CAST(DIV(n, 8) * {spacing} + MOD(n, 8) * 20 AS INT64) SECOND) AS ts
  FROM UNNEST(GENERATE_ARRAY(0, {events - 1})) AS n
)""").result()
    client.query(f"""
INSERT INTO `{table}` SELECT * REPLACE (TIMESTAMP_ADD(received_at, INTERVAL 30 SECOND) AS received_at)
FROM `{table}` WHERE STARTS_WITH(event_id, 'e-{first_day_ago}-') AND MOD(FARM_FINGERPRINT(event_id), 20) = 0
""").result()


def column_bytes(client: Any, table: str, columns: list[str], where: str) -> tuple[int, int]:
    """(rows, bytes) BigQuery would read: the columns, over the rows `where` keeps (the unpruned partitions)."""
    schema = {f.name: f.field_type for f in client.get_table(table).schema}
    sizes = []
    for column in columns:
        kind = schema[column]
        if kind == "STRING":
            sizes.append(f"SUM(IF({column} IS NULL, 0, 2 + BYTE_LENGTH({column})))")
        elif kind == "JSON":
            sizes.append(f"SUM(IFNULL(BYTE_LENGTH(TO_JSON_STRING({column})), 0))")
        elif kind == "BOOLEAN":
            sizes.append(f"COUNTIF({column} IS NOT NULL)")
        else:
            sizes.append(f"8 * COUNTIF({column} IS NOT NULL)")
    [row] = client.query(f"SELECT COUNT(*) AS n, {' + '.join(sizes)} AS b FROM `{table}` WHERE {where}").result()
    return int(row["n"]), int(row["b"] or 0)


def estimate(client: Any, dataset: str, reads: dict[str, list[str]], pruned: bool, today: str) -> tuple[int, int, int]:
    """(rows read, bytes read, bytes billed)."""
    rows = read = billed = 0
    for table, columns in reads.items():
        where = f"{PARTITION[table]} >= DATE_SUB(DATE '{today}', INTERVAL 30 DAY)" if pruned else "TRUE"
        n, b = column_bytes(client, f"{dataset}.{table}", columns, where)
        rows, read, billed = rows + n, read + b, billed + max(b, MIN_BILLED)
    return rows, read, billed


def timed(client: Any, sql: str, today: str) -> float:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("today", "DATE", today)])
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        list(client.query(sql, job_config=config).result())
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def old_views(client: Any, dataset: str) -> None:
    """The first version's views, as `old_*`, reading this dataset's `events`."""
    for name in ("events_dedup", "sessions", "daily_counts", "funnel_daily"):
        sql = (ROOT / "bench" / "old_views" / f"{name}.sql").read_text()
        sql = sql.replace("${project}.${dataset}", dataset)
        sql = re.sub(r"`" + re.escape(dataset) + r"\.(events_dedup|sessions)`", rf"`{dataset}.old_\1`", sql)
        client.query(f"CREATE OR REPLACE VIEW `{dataset}.old_{name}` AS {sql}").result()


def measure(client: Any, dataset: str, today: str, label: str) -> list[dict]:
    results = []
    for name, (template, old, new, old_reads, new_reads) in QUERIES.items():
        old_rows, old_read, old_bytes = estimate(client, dataset, old_reads, False, today)
        new_rows, new_read, new_bytes = estimate(client, dataset, new_reads, True, today)
        old_s = timed(client, template.format(d=dataset, t=old), today)
        new_s = timed(client, template.format(d=dataset, t=new), today)
        results.append(
            {
                "history": label,
                "query": name,
                "old_s": old_s,
                "old_rows": old_rows,
                "old_read": old_read,
                "old_bytes": old_bytes,
                "new_s": new_s,
                "new_rows": new_rows,
                "new_read": new_read,
                "new_bytes": new_bytes,
            }
        )
    return results


def mb(n: float) -> str:
    return f"{n / 1024**2:,.1f} MB"


def main() -> None:
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    with tempfile.TemporaryDirectory() as state:
        bq = start_local_bigquery(PORT, Path(state), Path(state) / "bigquery.log")
        try:
            env = local_env(PORT, "http://localhost") | {"BQ_DATASET": DATASET}
            os.environ.update(env)
            from loyjoy_collector.ops.bootstrap import bootstrap

            settings = Settings()
            sink = BigQuerySink(settings)
            bootstrap(settings, sink)
            client, dataset = sink.client, f"{sink.client.project}.{DATASET}"
            old_views(client, dataset)
            events = f"{dataset}.events"

            started = time.perf_counter()
            seed(client, events, 0, 365, PER_YEAR, today)
            seeded = time.perf_counter() - started
            full = refresh(sink, full=True)
            print(
                f"seeded {PER_YEAR:,} events over 365 days in {seeded:.1f} s; full refresh {full.seconds:.1f} s",
                file=sys.stderr,
            )
            results = measure(client, dataset, today, "1 year")
            seed(client, events, 365, 365, PER_YEAR, today)
            full2 = refresh(sink, full=True)
            print(f"history doubled; full refresh {full2.seconds:.1f} s", file=sys.stderr)
            results += measure(client, dataset, today, "2 years")

            # The refresh's own cost: one day's events arrive (as the collector writes them: received now).
            seed(client, events, 0, 1, PER_YEAR // 365, today)
            client.query(
                f"UPDATE `{events}` SET received_at = CURRENT_TIMESTAMP() "
                f"WHERE STARTS_WITH(event_id, 'e-0-') AND event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), "
                "INTERVAL 1 DAY)"
            ).result()
            daily = refresh(sink)
            references = len(re.findall(r"`[^`]+\.[^`]+`", script(client.project, DATASET)))
        finally:
            bq.terminate()

    total = {label: (0, 0) for label in ("1 year", "2 years")}
    print(f"\n{PER_YEAR:,} events a year; a report's three charts, last 30 days (median of 3 runs)\n")
    print(
        "| history | query | old: s | old: rows read | old: billed | new: s | new: rows read | new: billed | "
        "billed, old/new |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        old = f"{r['old_s']:.2f} | {r['old_rows']:,} | {mb(r['old_bytes'])}"
        new = f"{r['new_s']:.2f} | {r['new_rows']:,} | {mb(r['new_bytes'])}"
        print(f"| {r['history']} | {r['query']} | {old} | {new} | {r['old_bytes'] / r['new_bytes']:.0f}x |")
        old, new = total[r["history"]]
        total[r["history"]] = (old + r["old_bytes"], new + r["new_bytes"])
    (old1, new1), (old2, new2) = total["1 year"], total["2 years"]
    print(
        f"\nThe report, billed: old {mb(old1)} -> {mb(old2)} as history doubles ({old2 / old1:.2f}x); "
        f"new {mb(new1)} -> {mb(new2)} ({new2 / new1:.2f}x); old/new at 1 year {old1 / new1:.0f}x, "
        f"at 2 years {old2 / new2:.0f}x."
    )
    scale = 120_000_000 / PER_YEAR  # 10 M events a month, a year in: the bytes above grow with the rows read
    year = [r for r in results if r["history"] == "1 year"]
    old_scaled = sum(max(r["old_read"] * scale, MIN_BILLED) for r in year)
    new_scaled = sum(max(r["new_read"] * scale, MIN_BILLED) for r in year)
    print(
        f"At 10 M events a month, a year in (bytes read scaled by {scale:.0f}): old ~{old_scaled / 1024**3:,.1f} GB "
        f"per report (USD {old_scaled / TIB * PRICE_PER_TIB:.3f}), new {mb(new_scaled)} (USD "
        f"{new_scaled / TIB * PRICE_PER_TIB:.4f}): {old_scaled / new_scaled:,.0f}x."
    )
    monthly = references * 10 * 24 * 30  # MB, hourly
    print(
        f"Incremental refresh after a day's {PER_YEAR // 365:,} events: {daily.days} day(s) rebuilt in "
        f"{daily.seconds:.1f} s; the script references {references} tables, billed at most {references} x 10 MB "
        f"a run at these volumes: hourly {monthly / 1024:,.0f} GB, USD {monthly / 1024**2 * PRICE_PER_TIB:.2f} "
        "a month."
    )


if __name__ == "__main__":
    main()
