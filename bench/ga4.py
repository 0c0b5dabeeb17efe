"""What the GA4 side costs as the export grows: the refresh and a "last 30 days" chat_impact report, on one year of a
GA4 export of the real shape (tests/ga4_export.py) and then on two, against the views they replaced (which read
every export table since the collector started, on every chart).

The local BigQuery reports no bytes, so bytes are counted as BigQuery bills them on demand: the columns a query
references (nested fields by leaf: `event_params.key`, `event_params.value.int_value`, ...), over the tables it
reads, at BigQuery's sizes (STRING 2 + UTF-8 bytes, INT64/FLOAT64/TIMESTAMP/DATE 8, BOOL 1, NULL 0), each statement
on its own (BigQuery bills each statement of a script, at least 10 MB). Which export tables a statement reads is
what the local BigQuery expanded its `events_*` to (ops/local_bigquery.py records it: a literal filter on the
table suffix narrows it, as BigQuery documents for constant filters; anything else reads every table), checked
against what the refresh says it read (ga4_manifest.suffixes); the collector's own tables it reads are counted
over the partitions its filters keep. `BENCH_GA4_SESSIONS_PER_DAY` sets the volume (default 300).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import ga4_export  # noqa: E402  (the generator the tests use)

SESSIONS = int(os.environ.get("BENCH_GA4_SESSIONS_PER_DAY", "300"))
PORT = int(os.environ.get("BENCH_BIGQUERY_PORT", "9072"))
DATASET = "bench_ga4"
EXPORT = "bench_ga4_export"
MIN_BILLED = 10 * 1024**2
# The export's columns each statement that reads it references, as leaf paths, by the scratch table it fills:
# models/ga4_session_days.sql and models/ga4_reads/conversions.sql.
READ_COLUMNS = {
    "ga4_session_days_this_run": [
        "event_timestamp",
        "event_name",
        "user_pseudo_id",
        "event_params.key",
        "event_params.value.int_value",
        "device.category",
        "session_traffic_source_last_click.manual_campaign.source",
        "session_traffic_source_last_click.manual_campaign.medium",
        "session_traffic_source_last_click.manual_campaign.campaign_name",
        "collected_traffic_source.manual_source",
        "collected_traffic_source.manual_medium",
        "collected_traffic_source.manual_campaign_name",
        "traffic_source.source",
        "traffic_source.medium",
    ],
    "ga4_conversion_hits_this_run": [
        "event_timestamp",
        "event_name",
        "user_pseudo_id",
        "event_params.key",
        "event_params.value.int_value",
        "ecommerce.transaction_id",
        "ecommerce.purchase_revenue",
    ],
}
# What the old ga4_visits view read of every table since the start, on every chart that used it.
OLD_VIEW_COLUMNS = [
    "event_timestamp",
    "event_name",
    "user_pseudo_id",
    "event_params.key",
    "event_params.value.int_value",
    "traffic_source.source",
    "traffic_source.medium",
]
REPORT_COLUMNS = ["day", "device_category", "source", "medium", "chatted", "ga4_sessions", "converting_sessions"]


def leaf_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return 2 + len(value.encode())
    if isinstance(value, bool):
        return 1
    return 8


def path_bytes(row: dict[str, Any], path: list[str]) -> int:
    value: Any = row
    for depth, key in enumerate(path):
        if isinstance(value, list):
            return sum(path_bytes(item, path[depth:]) for item in value)
        if not isinstance(value, dict):
            return 0
        value = value.get(key)
    if isinstance(value, list):
        return sum(leaf_bytes(v) for v in value)
    return leaf_bytes(value)


def table_bytes(rows: Iterable[dict[str, Any]], columns: list[str]) -> int:
    paths = [column.split(".") for column in columns]
    return sum(path_bytes(row, path) for row in rows for path in paths)


Sizes = dict[str, dict[str, int]]  # per export table: bytes of each reading statement's columns, and the old view's


def seed_year(client: Any, first: date, days: int, seed: int) -> Sizes:
    """One more stretch of export: daily tables; returns, per table, the bytes the columns of each statement that
    reads the export hold there, and those the old view's columns hold (`old_view`)."""
    sizes: Sizes = {}
    for offset in range(0, days, 30):
        span = min(30, days - offset)
        visits = ga4_export.generate(seed + offset, first + timedelta(days=offset), span, SESSIONS)
        tables = ga4_export.Export(visits, 0).tables()
        ga4_export.seed(client, f"{client.project}.{EXPORT}", tables, replace=False)
        for suffix, rows in tables.items():
            sized = sizes.setdefault(suffix, {})
            for name, columns in (*READ_COLUMNS.items(), ("old_view", OLD_VIEW_COLUMNS)):
                sized[name] = sized.get(name, 0) + table_bytes(rows, columns)
    return sizes


def statements_read(reads: Path, after: int) -> list[tuple[str, list[str]]]:
    """The statements from the `after`-th on that read the export: the scratch table each fills, the export tables
    (suffixes) its wildcard was expanded to."""
    found = []
    for line in reads.read_text().splitlines()[after:] if reads.exists() else []:
        statement = json.loads(line)
        if f"{EXPORT}.events_*" not in statement["sql"]:
            continue
        [target] = [name for name in READ_COLUMNS if f".{name}`" in statement["sql"].split("\n", 1)[0]]
        found.append((target, [table.removeprefix(statement["prefix"]) for table in statement["tables"]]))
    return found


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def own_bytes(client: Any, table: str, columns: list[str], where: str) -> int:
    schema = {f.name: f.field_type for f in client.get_table(table).schema}
    sizes = []
    for column in columns:
        if schema[column] == "STRING":
            sizes.append(f"SUM(IF({column} IS NULL, 0, 2 + BYTE_LENGTH({column})))")
        elif schema[column] == "BOOLEAN":
            sizes.append(f"COUNTIF({column} IS NOT NULL)")
        else:
            sizes.append(f"8 * COUNTIF({column} IS NOT NULL)")
    [row] = client.query(f"SELECT {' + '.join(sizes)} AS b FROM `{table}` WHERE {where}").result()
    return int(row["b"] or 0)


def mb(n: float) -> str:
    return f"{n / 1024**2:,.2f} MB"


def main() -> None:
    from loyjoy_collector.ops.cli import local_env, start_local_bigquery
    from loyjoy_collector.ops.refresh import refresh

    today = datetime.now(UTC).date()
    with tempfile.TemporaryDirectory() as state:
        reads = Path(state) / "wildcard-reads.jsonl"
        bq = start_local_bigquery(PORT, Path(state), Path(state) / "bigquery.log", reads)
        try:
            env = local_env(PORT, "http://localhost") | {
                "BQ_DATASET": DATASET,
                "GA4_EXPORT_DATASET": EXPORT,
                "GA4_START_DATE": (today - timedelta(days=730)).isoformat(),
            }
            os.environ.update(env)
            from loyjoy_collector.ops.bootstrap import bootstrap
            from loyjoy_collector.settings import Settings
            from loyjoy_collector.sink import BigQuerySink

            settings = Settings()
            sink = BigQuerySink(settings)
            client = sink.client
            client.create_dataset(f"{client.project}.{EXPORT}", exists_ok=True)
            started = time.perf_counter()
            sizes = seed_year(client, today - timedelta(days=365), 364, 1)  # the year up to the day before yesterday
            print(
                f"seeded a year of GA4 export ({SESSIONS} sessions a day) in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            bootstrap(settings, sink)  # the first run reads the year once
            results = {}
            for label in ("1 year", "2 years"):
                # A new day arrives (yesterday's daily table) and the refresh runs, then runs again with nothing new.
                day = today - timedelta(days=1 if label == "1 year" else 0)
                sizes |= seed_year(client, day, 1, 99 if label == "1 year" else 98)
                runs = []
                for _ in range(2):
                    before = lines(reads)
                    ran = refresh(sink)
                    statements = statements_read(reads, before)
                    [last] = client.query(
                        f"SELECT suffixes FROM `{client.project}.{DATASET}.ga4_manifest` ORDER BY ran_at DESC LIMIT 1"
                    ).result()
                    # What the statements read is what the refresh says it read: each table once per statement kind.
                    for name in READ_COLUMNS:
                        named = sorted(s for target, tables in statements if target == name for s in tables)
                        if named != sorted(last["suffixes"]):
                            raise SystemExit(
                                f"{name}: the statements read {named}, the manifest says {last['suffixes']}"
                            )
                    per_statement = [sum(sizes[s][target] for s in tables) for target, tables in statements]
                    billed = sum(max(b, MIN_BILLED) for b in per_statement)
                    runs.append((len(last["suffixes"]), len(statements), sum(per_statement), billed, ran.seconds))
                window = f"day >= DATE_SUB(DATE '{today}', INTERVAL 30 DAY)"
                report = own_bytes(client, f"{client.project}.{DATASET}.chat_impact", REPORT_COLUMNS, window)
                old_view = sum(sized["old_view"] for sized in sizes.values())
                results[label] = (runs, report, old_view, len(sizes))
                if label == "1 year":
                    started = time.perf_counter()
                    sizes |= seed_year(client, today - timedelta(days=730), 364, 7)  # the year before
                    print(f"history doubled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        finally:
            bq.terminate()

    print(f"\nGA4 export, {SESSIONS} sessions a day; bytes as BigQuery bills them on demand (estimated: see above)\n")
    print(
        "| export history | tables | refresh: tables read (statements) | refresh: GA4 bytes read | "
        "refresh again: tables, bytes | report chat_impact, last 30 days | the old ga4_visits view, per chart |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, (runs, report, old_view, tables) in results.items():
        (n1, s1, b1, billed1, _), (n2, _, b2, _, _) = runs
        print(
            f"| {label} | {tables} | {n1} ({s1}) | {mb(b1)} (billed {mb(billed1)}) | {n2}, {mb(b2)} | "
            f"{mb(report)} (billed {mb(max(report, MIN_BILLED))}) | {mb(old_view)} |"
        )
    print("\nEach refresh's statements read just the tables ga4_manifest lists (checked).")


if __name__ == "__main__":
    main()
