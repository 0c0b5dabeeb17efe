"""Erasure of one person (GDPR Art. 17): every row that carries their e-mail hash or one of their ids, and no
row of anybody else.

The collector never stores an address, only HMAC-SHA256(PII_HASH_KEY, address): so the same key finds the
rows, and without that key nothing can be found (a run with another key would delete nothing and look done,
so there is none). A person's anonymous events go too: the client ids and GA client ids that appeared with
their hash (a GA4 hit's `client_id` is its GA client id), and the pseudonyms of ids that held the address.

Ids are matched whole, never as substrings: in columns by equality, in a kept JSON payload by the value of
its id fields, in a text payload or query string as a whole token. Client ids are what a sender claims, so
anybody can post another visitor's id next to their own address: an id seen with more than one e-mail hash
is ambiguous, and it goes only when the operator names it (`--client-id`).

Every table of the dataset with `email_hash`, `client_id`, `ga_client_id`, a kept payload or query is
covered: the raw tables, the analyst tables and their scratch copies, and tables added later.

BigQuery refuses DELETE on rows that insertAll streamed in the last ~30 minutes ("would affect rows in the
streaming buffer"). The erasure then waits and tries again by itself; an interrupted one is written to a
pending file (hashes and pseudonymous ids only) that `erase --resume` finishes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from .. import logs
from ..privacy import hashing
from ..sink import BigQuerySink

STREAMING_BUFFER = "streaming buffer"


@dataclass
class Erasure:
    email_hash: str | None
    client_ids: list[str] = field(default_factory=list)  # named by the operator: erased, ambiguous or not
    pseudonyms: list[str] = field(default_factory=list)  # what the gate made of ids that held the address
    deleted: dict[str, int] = field(default_factory=dict)
    requested_at: float = field(default_factory=time.time)
    linked: list[str] = field(default_factory=list)  # client and GA client ids seen with the hash
    ambiguous: list[str] = field(default_factory=list)  # linked ids seen with another hash too

    def ids(self) -> list[str]:
        """What is erased by id: an ambiguous id only when it was named (or is a pseudonym of the address)."""
        linked = set(self.linked) - set(self.ambiguous)
        return sorted(linked | set(self.client_ids) | set(self.pseudonyms))

    def skipped(self) -> list[str]:
        return sorted(set(self.ambiguous) - set(self.client_ids) - set(self.pseudonyms))


class MissingKey(Exception):
    """No deployed key: a made-up one would find nothing, delete nothing and still report success."""


keyed_hash = hashing.email_hash
pseudonyms = hashing.email_pseudonyms


def named_pseudonyms(key: bytes, client_ids: Iterable[str]) -> list[str]:
    """A named id that held a personal value (an address as client id) is stored as its pseudonym."""
    return sorted({hashing.pseudonym(key, value) for value in client_ids})


def resolve_key(env_key: str | None, cloud: bool, fetch: Callable[[], bytes]) -> bytes:
    """The deployed key, from PII_HASH_KEY or (with --cloud) Secret Manager; never a stand-in."""
    if env_key:
        return env_key.encode()
    if cloud:
        key = fetch()
        if key:
            return key
        raise MissingKey("the Secret Manager secret holding PII_HASH_KEY is empty")
    raise MissingKey(
        "erase needs the deployed PII_HASH_KEY (rows are found by their keyed hashes; any other key finds "
        "nothing): set PII_HASH_KEY, or use --cloud to read it from Secret Manager. For `loyjoy-collector dev`: "
        "PII_HASH_KEY=$(cat .local/pii_hash_key)"
    )


def linked_ids(sink: BigQuerySink, erasure: Erasure) -> list[str]:
    """Client ids and GA client ids that appeared with the person's hash: their anonymous events are theirs too."""
    from google.cloud import bigquery

    if erasure.email_hash is None:
        return []
    query = (
        f"SELECT DISTINCT id FROM `{sink.table_id('events')}`, UNNEST([client_id, ga_client_id]) AS id "
        "WHERE email_hash = @hash AND LENGTH(id) > 0"
    )  # an empty GA client id (the snippet's field may be empty) would link everybody without one; not `!= ''`:
    # the local BigQuery answers that with "dataset not found"
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("hash", "STRING", erasure.email_hash)]
    )
    return sorted(row["id"] for row in sink.client.query(query, job_config=config).result())


def ambiguous_ids(sink: BigQuerySink, ids: list[str]) -> dict[str, int]:
    """Ids seen with more than one e-mail hash, and with how many: anybody can send another visitor's client
    id with their own address, so such an id does not tell whose its anonymous rows are."""
    from google.cloud import bigquery

    if not ids:
        return {}
    query = (
        f"SELECT id, COUNT(DISTINCT e.email_hash) AS hashes FROM `{sink.table_id('events')}` AS e, "
        "UNNEST(@ids) AS id WHERE e.email_hash IS NOT NULL AND (e.client_id = id OR e.ga_client_id = id) "
        "GROUP BY id HAVING COUNT(DISTINCT e.email_hash) > 1"
    )
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", ids)])
    return {row["id"]: row["hashes"] for row in sink.client.query(query, job_config=config).result()}


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


# `query`: a refused request's query string, where a GA4 hit carries its `cid`.
PERSON_COLUMNS = frozenset({"email_hash", "client_id", "ga_client_id", "raw_payload", "query"})
# Where a kept JSON payload names an id: the snippet's and Data Tag's fields and GA4's, on the payload itself,
# on each element of a top-level array (a Data Tag batch) and on each of its `events`.
PAYLOAD_ID_KEYS = ("client_id", "session_id", "ga_client_id", "cid", "sid")
# What ends a token in text that is not JSON (a cut-off body, form or GA4 lines, a query string): so `c-1`
# matches in `client_id=c-1&en=x` or `"c-1"`, but neither in `c-10` nor in `xc-1`.
TOKEN_EDGE = r"""[\s"'&=,;?#{}\[\]()<>|\\]"""
_PAYLOAD = "SAFE.PARSE_JSON(raw_payload)"
_ITEMS = (
    f"ARRAY_CONCAT([{_PAYLOAD}], "
    f"IFNULL(CASE WHEN JSON_TYPE({_PAYLOAD}) = 'array' THEN JSON_QUERY_ARRAY({_PAYLOAD}, '$') END, []), "
    f"IFNULL(CASE WHEN JSON_TYPE(JSON_QUERY({_PAYLOAD}, '$.events')) = 'array' "
    f"THEN JSON_QUERY_ARRAY({_PAYLOAD}, '$.events') END, []))"
)  # the CASEs: JSON_QUERY_ARRAY of something that is no array is an error in the local BigQuery
_PAYLOAD_IDS = " OR ".join(f"JSON_VALUE(item, '$.{key}') IN UNNEST(@ids)" for key in PAYLOAD_ID_KEYS)


def token_pattern(value: str) -> str:
    """An RE2 pattern for `value` as a whole token. Every ASCII character that is not a letter or digit is
    written as `\\x{..}`, so no id can be read as regular-expression syntax (RE2 in BigQuery and DuckDB alike)."""
    body = "".join(ch if ch.isalnum() or not ch.isascii() else f"\\x{{{ord(ch):x}}}" for ch in value)
    return f"(?:^|{TOKEN_EDGE}){body}(?:{TOKEN_EDGE}|$)"


def text_forms(value: str) -> list[str]:
    """How an id can be written in text: as it is, form- or URL-encoded, or escaped inside a JSON string."""
    forms = (
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    )
    return list(dict.fromkeys(forms))


def conditions(erasure: Erasure, sink: BigQuerySink) -> Iterator[tuple[str, str, list[Any]]]:
    """(table, WHERE clause, parameters) for every table that can hold the person's rows. The SQL is built
    from constants only; the hash, ids and their token patterns are query parameters."""
    from google.cloud import bigquery

    ids = erasure.ids()
    tokens = sorted({token_pattern(form) for value in ids for form in text_forms(value)})
    params: list[Any] = [
        bigquery.ScalarQueryParameter("hash", "STRING", erasure.email_hash or ""),
        bigquery.ScalarQueryParameter("hash_token", "STRING", token_pattern(erasure.email_hash or "")),
        bigquery.ArrayQueryParameter("ids", "STRING", ids),
        bigquery.ArrayQueryParameter("tokens", "STRING", tokens),
    ]
    in_text = "EXISTS (SELECT 1 FROM UNNEST(@tokens) AS pattern WHERE REGEXP_CONTAINS({column}, pattern))"
    for table, names in sorted(person_tables(sink).items()):
        where = []
        if "email_hash" in names and erasure.email_hash is not None:
            where.append("email_hash = @hash")
        if "client_id" in names:  # a GA4 hit's client_id is its GA client id: linked ids hold both kinds
            where.append("client_id IN UNNEST(@ids)")
        if "ga_client_id" in names:
            where.append("ga_client_id IN UNNEST(@ids)")
        if "raw_payload" in names:  # a refused payload keeps `email_hash` and ids as sent
            where.append(
                f"({_PAYLOAD} IS NOT NULL AND EXISTS (SELECT 1 FROM UNNEST({_ITEMS}) AS item WHERE {_PAYLOAD_IDS}))"
            )
            where.append(f"({_PAYLOAD} IS NULL AND {in_text.format(column='raw_payload')})")
            if erasure.email_hash is not None:  # at any depth (`detail`, `user_data`, an event): as a token
                where.append("REGEXP_CONTAINS(raw_payload, @hash_token)")
        if "query" in names:
            where.append(in_text.format(column="query"))
        if where:
            yield table, " OR ".join(where), params


def resolve_ids(sink: BigQuerySink, erasure: Erasure, say: Callable[[str], None]) -> None:
    """Linked and ambiguous ids, added to what an interrupted run saved: after its first tables were done,
    the rows that linked an id (or made it ambiguous) may be gone, and an ambiguous id must stay skipped."""
    erasure.linked = sorted(set(erasure.linked) | set(linked_ids(sink, erasure)))
    seen = ambiguous_ids(sink, sorted(set(erasure.linked) | set(erasure.client_ids)))
    erasure.ambiguous = sorted(set(erasure.ambiguous) | set(seen))
    say(f"{len(erasure.linked)} client ids linked to the address, {len(erasure.client_ids)} named")
    for value in erasure.ambiguous:
        hashes = f"{seen[value]} e-mail hashes" if value in seen else "more than one e-mail hash"
        if value in erasure.client_ids or value in erasure.pseudonyms:
            say(f"ambiguous client id {value} (seen with {hashes}): erased, it was named")
        else:
            say(
                f"ambiguous client id {value} (seen with {hashes}): skipped, not erased; rows with the person's "
                "e-mail hash still go. Name it with --client-id to erase all of its rows"
            )


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

    resolve_ids(sink, erasure, say)
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
                say(
                    f"{table}: rows streamed in the last ~30 minutes cannot be deleted yet (BigQuery's streaming "
                    f"buffer); trying again in {retry_seconds:.0f} s"
                )
                time.sleep(retry_seconds)
                continue
            say(f"{table}: {counted['n']} rows deleted")
            break
    if not dry_run:
        logs.emit(
            logging.WARNING,
            "erasure done",
            "erasure",
            email_hash=erasure.email_hash,
            client_ids=len(erasure.ids()),
            ambiguous_skipped=len(erasure.skipped()),
            deleted=erasure.deleted,
        )
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
