"""Erasure of one person (GDPR Art. 17): every row that carries their e-mail hash or one of their client ids.

The collector never stores an address, only HMAC-SHA256(PII_HASH_KEY, address): so the same key finds the
rows. A person's anonymous events go too: the client ids that ever appeared with their hash (and the
pseudonyms of ids that held the address itself). Every table of the dataset with `email_hash`, `client_id` or
a kept payload is covered: the raw tables, the analyst tables and their scratch copies, and tables added later.

BigQuery refuses DELETE on rows that insertAll streamed in the last ~30 minutes ("would affect rows in the
streaming buffer"). The erasure then waits and tries again by itself; an interrupted one is written to a
pending file (hashes and pseudonymous ids only) that `erase --resume` finishes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import logs
from ..privacy import hashing
from ..sink import BigQuerySink

STREAMING_BUFFER = "streaming buffer"


@dataclass
class Erasure:
    email_hash: str | None
    client_ids: list[str] = field(default_factory=list)
    pseudonyms: list[str] = field(default_factory=list)  # what the gate made of ids that held the address
    deleted: dict[str, int] = field(default_factory=dict)
    requested_at: float = field(default_factory=time.time)


keyed_hash = hashing.email_hash
pseudonyms = hashing.email_pseudonyms


def linked_client_ids(sink: BigQuerySink, erasure: Erasure) -> list[str]:
    """Client ids that ever appeared with the person's hash: their anonymous events are theirs too."""
    from google.cloud import bigquery

    if erasure.email_hash is None:
        return []
    query = (
        f"SELECT DISTINCT client_id FROM `{sink.table_id('events')}` WHERE email_hash = @hash AND client_id IS NOT NULL"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("hash", "STRING", erasure.email_hash)]
    )
    return sorted(row["client_id"] for row in sink.client.query(query, job_config=config).result())


def person_tables(sink: BigQuerySink) -> dict[str, set[str]]:
    """Every table of the dataset (not views) with a column that can hold a person's rows: the schema's tables,
    the analyst tables and their `_this_run` scratch copies, and whatever is added later."""
    found: dict[str, set[str]] = {}
    for item in sink.client.list_tables(f"{sink.client.project}.{sink.dataset}"):
        if item.table_type != "TABLE":
            continue
        columns = {field.name for field in sink.client.get_table(item.reference).schema}
        if columns & PERSON_COLUMNS:
            found[item.table_id] = columns
    return found


PERSON_COLUMNS = frozenset({"email_hash", "client_id", "raw_payload"})


def conditions(erasure: Erasure, sink: BigQuerySink) -> Iterator[tuple[str, str, list[Any]]]:
    """(table, WHERE clause, parameters) for every table that can hold the person's rows."""
    from google.cloud import bigquery

    ids = sorted(set(erasure.client_ids) | set(erasure.pseudonyms))
    params: list[Any] = [
        bigquery.ScalarQueryParameter("hash", "STRING", erasure.email_hash or "-"),
        bigquery.ArrayQueryParameter("ids", "STRING", ids),
    ]
    for table, names in sorted(person_tables(sink).items()):
        where = []
        if "email_hash" in names:
            where.append("email_hash = @hash")
        if "client_id" in names:
            where.append("client_id IN UNNEST(@ids)")
        if "raw_payload" in names:  # a refused payload keeps `email_hash` and ids as sent
            where.append("STRPOS(raw_payload, @hash) > 0")
            where.append("EXISTS (SELECT 1 FROM UNNEST(@ids) AS id WHERE STRPOS(raw_payload, id) > 0)")
        if where:
            yield table, " OR ".join(where), params


def run(
    sink: BigQuerySink,
    erasure: Erasure,
    *,
    dry_run: bool,
    wait_minutes: float,
    retry_seconds: float,
    say: Callable[[str], None],
    pending_file: Path | None,
) -> Erasure:
    from google.api_core import exceptions
    from google.cloud import bigquery

    erasure.client_ids = sorted(set(erasure.client_ids) | set(linked_client_ids(sink, erasure)))
    say(f"{len(erasure.client_ids)} client ids linked to the address or named")
    deadline = time.monotonic() + wait_minutes * 60
    for table, where, params in conditions(erasure, sink):
        config = bigquery.QueryJobConfig(query_parameters=params)
        count_sql = f"SELECT COUNT(*) AS n FROM `{sink.table_id(table)}` WHERE {where}"
        [counted] = list(sink.client.query(count_sql, job_config=config).result())
        erasure.deleted[table] = counted["n"]
        if dry_run or not counted["n"]:
            say(f"{table}: {counted['n']} rows {'would be ' if dry_run else ''}deleted")
            continue
        while True:
            try:
                sink.client.query(f"DELETE FROM `{sink.table_id(table)}` WHERE {where}", job_config=config).result()
            except exceptions.BadRequest as exc:
                if STREAMING_BUFFER not in str(exc) or time.monotonic() > deadline:
                    if pending_file is not None:
                        save_pending(pending_file, erasure)
                        say(f"not finished; `loyjoy-collector erase --resume` finishes it ({pending_file})")
                    raise
                say(f"{table}: rows streamed in the last ~30 minutes cannot be deleted yet (BigQuery's streaming "
                    f"buffer); trying again in {retry_seconds:.0f} s")  # fmt: skip
                time.sleep(retry_seconds)
                continue
            say(f"{table}: {counted['n']} rows deleted")
            break
    if not dry_run:
        logs.emit(logging.WARNING, "erasure done", "erasure", email_hash=erasure.email_hash,
                  client_ids=len(erasure.client_ids), deleted=erasure.deleted)  # fmt: skip
        if pending_file is not None:
            drop_pending(pending_file, erasure)
    return erasure


def save_pending(path: Path, erasure: Erasure) -> None:
    pending = [
        e for e in load_pending(path) if e.email_hash != erasure.email_hash or e.client_ids != erasure.client_ids
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(e) for e in [*pending, erasure]], indent=1))


def load_pending(path: Path) -> list[Erasure]:
    if not path.exists():
        return []
    return [Erasure(**item) for item in json.loads(path.read_text())]


def drop_pending(path: Path, erasure: Erasure) -> None:
    rest = [e for e in load_pending(path) if e.requested_at != erasure.requested_at]
    if rest:
        path.write_text(json.dumps([asdict(e) for e in rest], indent=1))
    else:
        path.unlink(missing_ok=True)


def hash_key_from_secret(project: str, secret: str) -> bytes:
    """The deployed key, read from Secret Manager with the operator's credentials (REST, no extra library)."""
    import base64

    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    url = f"https://secretmanager.googleapis.com/v1/projects/{project}/secrets/{secret}/versions/latest:access"
    answer = AuthorizedSession(credentials).get(url, timeout=30)
    answer.raise_for_status()
    return base64.b64decode(answer.json()["payload"]["data"])
