"""`loyjoy-collector`: bootstrap a BigQuery, run the whole thing locally, look at the rows."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from .local_bigquery import READS_LOG

if TYPE_CHECKING:
    from ..settings import Settings

FUNCTION_SOURCE = Path(__file__).resolve().parents[2] / "main.py"
DEV_ORIGINS = "http://127.0.0.1:8081,http://localhost:8081,http://127.0.0.1:8080,http://localhost:8080"


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from ..settings import Settings
    from .bootstrap import bootstrap

    for line in bootstrap(Settings()):
        print(line)
    return 0


def wait_for(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def start_local_bigquery(
    port: int, data_dir: Path | None, log: Path | None = None, reads: Path | None = None
) -> subprocess.Popen[bytes]:
    """bqemulator on loopback; persistent under `data_dir`, in memory without one. `reads`: a file where each
    statement that reads a wildcard table records the tables it read (ops/local_bigquery.py)."""
    command = [
        sys.executable,
        "-m",
        "loyjoy_collector.ops.local_bigquery",
        "start",
        "--rest-port",
        str(port),
        "--grpc-port",
        "0",
        "--project",
        "loyjoy-local",
        "--log-level",
        "warning",
    ]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["--persistent", "--data-dir", str(data_dir)]
    out = log.open("ab") if log else subprocess.DEVNULL
    env = os.environ | ({READS_LOG: str(reads)} if reads else {})
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    wait_for(f"http://127.0.0.1:{port}/bigquery/v2/projects/loyjoy-local/datasets", 60, process)
    return process


def start_function(port: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """Exactly what Cloud Functions runs: functions-framework on functions/main.py, target `collect`."""
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(FUNCTION_SOURCE),
        "--target",
        "collect",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    out = log.open("ab") if log else None
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if log else None)
    wait_for(f"http://127.0.0.1:{port}/healthy", 30, process)
    return process


def local_env(bq_port: int, origins: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BIGQUERY_API_ENDPOINT=f"http://127.0.0.1:{bq_port}",
        BQ_PROJECT="loyjoy-local",
        BQ_DATASET=env.get("BQ_DATASET", "loyjoy"),
        ALLOWED_ORIGINS=env.get("ALLOWED_ORIGINS", origins),
        PII_HASH_KEY=env.get("PII_HASH_KEY", "dev-only-" + secrets.token_hex(8)),
    )
    return env


def cmd_dev(args: argparse.Namespace) -> int:
    from ..settings import Settings
    from .bootstrap import bootstrap

    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    key_file = state / "pii_hash_key"
    if not key_file.exists():
        key_file.write_text("dev-only-" + secrets.token_hex(16))
    os.environ.setdefault("PII_HASH_KEY", key_file.read_text().strip())
    demo = f"http://127.0.0.1:{args.demo_port},http://localhost:{args.demo_port}"
    env = local_env(args.bigquery_port, f"{DEV_ORIGINS},{demo}")
    children: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the finally below stops the children
    try:
        print(f"local BigQuery (bqemulator) on http://127.0.0.1:{args.bigquery_port}, data in {state / 'bigquery'}")
        children.append(start_local_bigquery(args.bigquery_port, state / "bigquery", state / "bigquery.log"))
        os.environ.update(env)
        for line in bootstrap(Settings()):
            print("  " + line)
        children.append(start_function(args.port, env))
        children.append(start_demo(args.demo_port, env, f"http://127.0.0.1:{args.port}/"))
        print(DEV_HELP.format(port=args.port, demo_port=args.demo_port))
        from ..sink import BigQuerySink
        from .refresh import refresh

        sink, refreshed = BigQuerySink(Settings()), 0.0
        while all(child.poll() is None for child in children):
            if time.monotonic() - refreshed > DEV_REFRESH_SECONDS:  # the analyst tables, as the schedule would
                try:
                    refresh(sink)
                except Exception as exc:  # the next round tries again; the collector runs on regardless
                    print(f"refresh failed: {exc}", file=sys.stderr)
                refreshed = time.monotonic()
            time.sleep(0.5)
        print("a child process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()


def start_demo(port: int, env: dict[str, str], collector: str) -> subprocess.Popen[bytes]:
    """The demo page (snippet + LoyJoy stand-in) on its own origin, reading rows from the same BigQuery."""
    command = [sys.executable, "-m", "loyjoy_collector.ops.devserver", "--port", str(port), "--collector", collector]
    process = subprocess.Popen(command, env=env)
    wait_for(f"http://127.0.0.1:{port}/", 15, process)
    return process


DEV_REFRESH_SECONDS = 30

DEV_HELP = """
The collector runs on http://127.0.0.1:{port}/ (Ctrl-C stops everything).

  Demo page with a stand-in LoyJoy chat:  http://127.0.0.1:{demo_port}/
  Send an event:
    curl -s http://127.0.0.1:{port}/ -H 'Content-Type: application/json' \\
      -d '{{"event": "signin", "detail": {{"bot_id": "b1", "process_name": "Demo", "email": "a@b.co"}}}}'
  See the rows:
    loyjoy-collector rows            # latest events
    loyjoy-collector rows --rejected # latest refusals, with reasons
  The analyst tables (funnel_daily, daily_counts, sessions, ...) are refreshed every 30 s; the demo page charts them.
"""


def reading_settings(args: argparse.Namespace) -> Settings:
    """The local BigQuery of `dev`, unless the environment names another one or --cloud says so."""
    from ..settings import Settings

    settings = Settings()
    if not settings.bigquery_api_endpoint and not args.cloud:
        os.environ.update(local_env(args.bigquery_port, DEV_ORIGINS))
        settings = Settings()
    return settings


def cmd_rows(args: argparse.Namespace) -> int:
    from ..sink import BigQuerySink

    settings = reading_settings(args)
    sink = BigQuerySink(settings)
    table = "events_rejected" if args.rejected else "events"
    columns = (
        "received_at, reason, reason_detail, http_status, raw_payload"
        if args.rejected
        else "event_ts, event_name, event_name_raw, bot_id, process_name, label, client_id, email_hash, detail"
    )
    query = f"SELECT {columns} FROM `{sink.table_id(table)}` ORDER BY received_at DESC LIMIT {int(args.limit)}"
    for row in sink.client.query(query).result():
        print(json.dumps(dict(row.items()), default=str, ensure_ascii=False))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import date

    from ..sink import BigQuerySink
    from .replay import rejected_rows, replay

    settings = reading_settings(args)
    since = date.fromisoformat(args.since) if args.since else None
    rows = rejected_rows(BigQuerySink(settings), args.reason, since, args.limit)
    if args.dry_run:
        for row in rows:
            print(json.dumps({"rejected_id": row["rejected_id"], "reason": row["reason"]}))
        print(f"{len(rows)} payloads would be sent to {args.to}")
        return 0
    key = settings.pii_hash_key.get_secret_value().encode() if settings.pii_hash_key else None
    results = replay(rows, args.to, args.origin, key)
    for result in results:
        print(json.dumps(result.__dict__, ensure_ascii=False))
    stored = sum(1 for r in results if 200 <= r.status < 300)
    print(f"{stored} of {len(results)} accepted")
    return 0 if stored == len(results) else 1


def cmd_erase(args: argparse.Namespace) -> int:
    from .. import logs
    from ..settings import Settings
    from ..sink import BigQuerySink
    from . import erase as erasing
    from .erase import Erasure

    pending_file = Path(args.pending_file)
    if not args.resume and not args.email and not args.client_id:
        print("name the person: --email ADDRESS and/or --client-id ID", file=sys.stderr)
        return 2
    # Before reading_settings: for the local BigQuery it fills in a made-up dev key, which finds nothing.
    env_key = None if args.resume else Settings().pii_hash_key
    settings = reading_settings(args)
    logs.configure("json", settings.project, lambda text: text)  # the audit line: hashes and counts only
    if args.resume:  # the pending file holds hashes and pseudonyms already
        todo = erasing.load_pending(pending_file)
        if not todo:
            print(f"nothing pending in {pending_file}")
    else:
        try:
            key = erasing.resolve_key(
                env_key.get_secret_value() if env_key else None,
                args.cloud,
                lambda: erasing.hash_key_from_secret(settings.project or "", args.secret),
            )
        except erasing.MissingKey as exc:
            print(f"erase: {exc}", file=sys.stderr)
            return 2
        named = [value for value in args.client_id if value]  # `--client-id ''` would name nobody's rows
        own = erasing.named_pseudonyms(key, named) + (erasing.pseudonyms(key, args.email) if args.email else [])
        todo = [Erasure(erasing.keyed_hash(key, args.email) if args.email else None, named, own)]
    sink = BigQuerySink(settings)
    for erasure in todo:
        erasing.run(
            sink,
            erasure,
            dry_run=args.dry_run,
            wait_minutes=args.wait,
            retry_seconds=args.retry_every,
            say=print,
            pending_file=None if args.dry_run else pending_file,
        )
        total = sum(erasure.deleted.values())
        print(f"{total} rows {'would be ' if args.dry_run else ''}deleted: {json.dumps(erasure.deleted)}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from ..sink import BigQuerySink
    from .refresh import RefreshFailed, refresh

    sink = BigQuerySink(reading_settings(args))
    try:
        ran = refresh(sink, recent_days=args.days, full=args.full, include_bots=args.include_bots)
    except RefreshFailed as failed:  # the other tables are up to date; the next run retries these days
        for failure in failed.refreshed.failures:
            print(f"failed: {failure}", file=sys.stderr)
        ran = failed.refreshed
        print(f"{len(ran.failures)} step(s) failed; their {ran.days} event days are retried by the next refresh")
        return 1
    bots = "bots included" if ran.include_bots else "bots left out"
    queued = f"; {ran.late_days_queued} late days left to the next runs" if ran.late_days_queued else ""
    if not ran.days and not ran.rejected_days:
        print(f"nothing new since the last refresh ({bots}, {ran.seconds:.1f} s{queued})")
    else:
        print(
            f"rebuilt {ran.days} event days ({ran.first_day} to {ran.last_day}), {ran.session_days} session days, "
            f"{ran.rejected_days} refusal days in {ran.seconds:.1f} s ({bots}{queued})"
        )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..sink import BigQuerySink
    from .check import check

    sink = None if args.no_read else BigQuerySink(reading_settings(args))
    passed = check(
        args.url, args.origin, sink, lambda s: print(f"{'PASS' if s.ok else 'FAIL'}  {s.name:13} {s.detail}")
    )
    print("all checks passed" if passed else "FAILED")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loyjoy-collector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("bootstrap", help="create or update the dataset, tables and views").set_defaults(
        run=cmd_bootstrap
    )

    dev = commands.add_parser("dev", help="local BigQuery + the function + the demo page, on loopback")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--bigquery-port", type=int, default=9050)
    dev.add_argument("--demo-port", type=int, default=8081)
    dev.add_argument("--state-dir", default=".local", help="git-ignored folder for the local BigQuery's data")
    dev.set_defaults(run=cmd_dev)

    rows = commands.add_parser("rows", help="print the latest rows (of the local BigQuery by default)")
    rows.add_argument("--rejected", action="store_true")
    rows.add_argument("--limit", type=int, default=10)
    rows.add_argument("--bigquery-port", type=int, default=9050)
    rows.add_argument("--cloud", action="store_true", help="read the BigQuery the environment names")
    rows.set_defaults(run=cmd_rows)

    again = commands.add_parser("replay", help="send refused payloads from events_rejected to a collector again")
    again.add_argument("--to", required=True, help="collector URL, e.g. https://...run.app/")
    again.add_argument("--reason", help="only this reason, e.g. bigquery_refused")
    again.add_argument("--since", help="only refusals received on or after this day (YYYY-MM-DD)")
    again.add_argument("--limit", type=int, default=1000)
    again.add_argument("--origin", help="Origin header to send (when ALLOWED_ORIGINS must admit it)")
    again.add_argument("--dry-run", action="store_true")
    again.add_argument("--bigquery-port", type=int, default=9050)
    again.add_argument("--cloud", action="store_true", help="read the BigQuery the environment names")
    again.set_defaults(run=cmd_replay)

    again_tables = commands.add_parser("refresh", help="bring the analyst tables up to date (incremental)")
    again_tables.add_argument("--days", type=int, default=0, help="also rebuild the last N days, new rows or not")
    again_tables.add_argument("--full", action="store_true", help="rebuild the whole history")
    bots = again_tables.add_mutually_exclusive_group()
    bots.add_argument(
        "--include-bots",
        dest="include_bots",
        action="store_true",
        help="count bots in the analyst tables (a changed choice rebuilds all days)",
    )
    bots.add_argument(
        "--exclude-bots",
        dest="include_bots",
        action="store_false",
        help="leave bots out (the default; with neither flag: as the last refresh did)",
    )
    again_tables.set_defaults(include_bots=None)
    again_tables.add_argument("--bigquery-port", type=int, default=9050)
    again_tables.add_argument("--cloud", action="store_true", help="the BigQuery the environment names")
    again_tables.set_defaults(run=cmd_refresh)

    erase = commands.add_parser("erase", help="delete one person's rows everywhere (GDPR Art. 17)")
    erase.add_argument("--email", help="the person's e-mail address (hashed with the deployed key, never stored)")
    erase.add_argument(
        "--client-id",
        action="append",
        default=[],
        help="a client or GA client id of theirs (repeatable); erased even if ambiguous",
    )
    erase.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    erase.add_argument("--resume", action="store_true", help="finish erasures that were interrupted")
    erase.add_argument("--wait", type=float, default=90, help="minutes to wait out BigQuery's streaming buffer")
    erase.add_argument("--retry-every", type=float, default=60, help="seconds between tries while waiting")
    erase.add_argument("--secret", default="loyjoy-collector-pii-hash-key", help="Secret Manager secret (--cloud)")
    erase.add_argument("--pending-file", default=".local/erasure-pending.json")
    erase.add_argument("--bigquery-port", type=int, default=9050)
    erase.add_argument(
        "--cloud", action="store_true", help="the BigQuery the environment names; key from Secret Manager"
    )
    erase.set_defaults(run=cmd_erase)

    verify = commands.add_parser("check", help="after a deploy: health, CORS, snippet, an event stored, a refusal kept")
    verify.add_argument("url", help="the collector URL (terraform output -raw collector_url)")
    verify.add_argument("--origin", required=True, help="your site's origin, as in allowed_origins")
    verify.add_argument("--no-read", action="store_true", help="do not read BigQuery back (no access)")
    verify.add_argument("--bigquery-port", type=int, default=9050)
    verify.add_argument("--cloud", action="store_true", help="read the BigQuery the environment names")
    verify.set_defaults(run=cmd_check)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
