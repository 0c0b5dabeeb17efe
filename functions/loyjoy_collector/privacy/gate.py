"""The row boundary: every value of every row passes here on its way to BigQuery, whatever its column.

Rows are built from what senders said (`rows.py`); this is the one place that makes them safe and storable, so
a column added to the schema later cannot forget it. Per column type, from the schema files:

- STRING: control characters removed, lone surrogates replaced (BigQuery wants valid UTF-8), personal values
  replaced (`values.py`), format characters removed and a leading formula character marked as text
  (`dimensions.py`: these become the analyst tables' dimensions), then cut to the column's length limit
  (flagged `truncated_<column>`). A structured
  value for a STRING column (a refused payload) is walked like JSON and stored as JSON text.
- JSON: every string and key as above; numbers outside their range (`measures.py`: `nps` 0-10, amounts,
  durations; INT64 for ids) and non-finite floats dropped and counted (an average or a sum must not be one
  sender's to set); too large as a whole: dropped, flagged.
- INTEGER: outside INT64, dropped (NULL) and flagged; FLOAT: non-finite, dropped and flagged.

The decision for out-of-range values of typed fields the sender names (`ga_session_id`, `ts`) is made earlier,
in `protocol.py`: they are refused there with a precise `invalid_field`. What reaches the gate out of range is
dropped and flagged rather than refused: one bad number inside `detail` should not cost the event.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from .. import measures
from ..ids import fresh_id
from ..schema import tables
from .dimensions import dimension_text
from .keys import CONTAINER_KEYS, Scrubber
from .languages import language_tags
from .names import LANGUAGE_KEYS, URL_VALUE_KEYS, normalise_key
from .numbers import personal_number
from .placeholders import REDACTED
from .tally import Tally
from .urls import clean_url, looks_like_url
from .values import personal_event_name, scrub_text

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DETAIL_LIMIT = 256 * 1024  # the JSON column's: BigQuery has maxLength for STRING columns only
# Bodies that could not be parsed, and refused queries: the allow-list applies to `key=value` text too.
STRICT_TEXT = frozenset({"raw_payload", "query"})
# Identifiers: a placeholder would merge every visitor (or event) whose id held a personal value into one;
# such an id becomes a keyed pseudonym of itself instead (a fresh one for an event id, without a key).
ID_COLUMNS = frozenset({"event_id", "client_id", "session_id", "ga_client_id"})
# Made by the collector itself from nothing a sender wrote: a keyed hash, enum values, its own version.
OWN_COLUMNS = frozenset({"email_hash", "protocol", "consent_analytics", "collector_version", "ip_truncated"})
# Page addresses: only what `urls.py` lets a URL keep.
URL_COLUMNS = frozenset({"page_location", "page_referrer"})
# Event names reach the daily counts: one that carries a personal value becomes a pseudonym of itself.
EVENT_NAME_COLUMNS = frozenset({"event_name", "event_name_raw"})
_OWN_HASH = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DROP = object()


class Gate:
    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber
        self._allowed = scrubber.kept_keys - CONTAINER_KEYS  # `"events": "text"` is no analytical value

    def text(self, value: str, tally: Tally, strict: bool = False, links: bool = True) -> str:
        return scrub_text(value, tally, self._allowed, strict, self._scrubber.url_params, links)

    def url(self, value: str, tally: Tally) -> str:
        """A URL keeps what `urls.py` lets it keep; the rest of the detectors look at that (a URL that was
        cleaned as a whole needs no second look for URLs in it)."""
        return self.text(clean_url(value, tally, self._scrubber.url_params), tally, links=not looks_like_url(value))

    def _json(self, value: Any, tally: Tally, key: str = "") -> Any:
        if isinstance(value, str):
            name = normalise_key(key)
            if name in URL_VALUE_KEYS:
                return self.url(value, tally)
            if name in LANGUAGE_KEYS:
                return language_tags(_CONTROL.sub("", value), tally) or _DROP
            return self.text(value, tally)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float) and (placeholder := personal_number(value, key)) is not None:
            tally.replaced += 1
            return placeholder
        if isinstance(value, int | float):
            storable = INT64_MIN <= value <= INT64_MAX if isinstance(value, int) else math.isfinite(value)
            if storable and measures.within(key, value):
                return value
            tally.out_of_range += 1  # BigQuery would refuse the row; an `nps` of 1e308 would skew every average
            return _DROP
        if isinstance(value, dict):
            clean = {self.text(str(k), tally): self._json(v, tally, str(k)) for k, v in value.items()}
            return {k: v for k, v in clean.items() if v is not _DROP}
        if isinstance(value, list | tuple):
            return [item for item in (self._json(v, tally, key) for v in value) if item is not _DROP]
        return self.text(str(value), tally)

    def json_text(self, value: Any, tally: Tally) -> str:
        clean = None if (walked := self._json(value, tally)) is _DROP else walked
        try:
            return orjson.dumps(clean).decode()
        except TypeError:  # a lone surrogate left in a key or a number past 64 bits: the standard encoder
            return json.dumps(clean, ensure_ascii=False, separators=(",", ":"))

    def _cell(self, column: dict[str, Any], value: Any, tally: Tally) -> Any:
        name, kind = column["name"], column["type"]
        limit = int(column.get("maxLength") or DETAIL_LIMIT)
        if name in OWN_COLUMNS:
            if name == "email_hash" and not (isinstance(value, str) and _OWN_HASH.fullmatch(value)):
                tally.replaced += 1  # never a sender's text: the collector's own hash has exactly this form
                return None
            return value
        if kind == "STRING" and name in ID_COLUMNS and isinstance(value, str):
            return self._identifier(value, limit, name == "event_id", tally)
        links = True
        if kind == "STRING" and isinstance(value, str):
            if name in EVENT_NAME_COLUMNS and personal_event_name(value):
                tally.replaced += 1
                return self._scrubber.pseudonym(value) or REDACTED
            if name == "language":
                value = language_tags(_CONTROL.sub("", value), tally)
                if value is None:
                    return None
            elif name in URL_COLUMNS:
                links = not looks_like_url(value)
                value = clean_url(value, tally, self._scrubber.url_params)
            elif name == "utm_term" and "utm_term" not in self._scrubber.url_params:
                tally.replaced += 1
                return None
        if kind == "STRING":
            if not isinstance(value, str):
                text = self.json_text(value, tally)
            elif name in STRICT_TEXT:
                text = self.text(value, tally, True, links)
            else:
                text = dimension_text(self.text(value, tally, False, links))
            if len(text) > limit:
                tally.truncated.append(name)
                text = text[:limit]
            return text
        if kind == "JSON":
            text = self.json_text(value, tally)
            if len(text) > limit:
                tally.truncated.append(name)
                return None
            return text
        if kind == "INTEGER":
            if isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX:
                return value
            tally.out_of_range += 1
            return None
        if kind == "FLOAT":
            if isinstance(value, int | float) and math.isfinite(value):
                return value
            tally.out_of_range += 1
            return None
        return value

    def _identifier(self, value: str, limit: int, required: bool, tally: Tally) -> str | None:
        before = tally.replaced
        clean = self.text(value, tally)
        if tally.replaced == before and len(clean) <= limit:
            return clean
        pseudonym = self._scrubber.pseudonym(value)
        if pseudonym is None and required:
            return fresh_id()
        return pseudonym

    def seal(self, table: str, row: dict[str, Any], tally: Tally) -> dict[str, Any]:
        """The row as BigQuery will get it: exactly the schema's columns, every value made safe.
        `quality_flags`, where the table has it, gains what the gate and the key scrubber removed."""
        plan = _plan(table)
        sealed = dict(plan.empty)  # every column, None (a repeated one: empty) unless the row has a value for it
        allowed, urls, ways = self._allowed, self._scrubber.url_params, plan.ways
        for name, value in row.items():
            if value is None:
                continue
            step = ways.get(name)
            if step is None:
                continue  # not a column of this table
            column, way, limit = step
            if way is _TEXT and value.__class__ is str:
                clean = dimension_text(scrub_text(value, tally, allowed, False, urls))
                if len(clean) > limit:
                    tally.truncated.append(name)
                    clean = clean[:limit]
                sealed[name] = clean
            elif way is _AS_IS:
                sealed[name] = value
            elif way is _REPEATED:
                sealed[name] = [self._cell(column, item, tally) for item in value if item is not None]
            elif way is not _FLAGS:  # flags are filled last, with what the other columns lost
                sealed[name] = self._cell(column, value, tally)
        if "quality_flags" in row:
            flags = [self.text(flag, tally) for flag in row["quality_flags"]]
            sealed["quality_flags"] = flags + [self.text(flag, Tally()) for flag in flags_of(tally)]
        return sealed


# How `seal` treats a column: a STRING column without rules of its own goes through the detectors at once;
# the collector's own timestamps and booleans are stored as they are; every other column by `Gate._cell`.
_TEXT, _AS_IS, _FLAGS, _REPEATED, _CELL = "text", "as is", "flags", "repeated", "cell"
_SPECIAL_STRINGS = ID_COLUMNS | OWN_COLUMNS | URL_COLUMNS | EVENT_NAME_COLUMNS | STRICT_TEXT | {"language", "utm_term"}


@dataclass(frozen=True)
class _Plan:
    ways: dict[str, tuple[dict[str, Any], str, int]]  # column name -> (its schema, how, its length limit)
    empty: dict[str, Any]  # the sealed row before any value: every column, in the schema's order


@cache
def _plan(table: str) -> _Plan:
    ways: dict[str, tuple[dict[str, Any], str, int]] = {}
    for column in tables()[table].fields:
        name, kind = column["name"], column["type"]
        if name == "quality_flags":
            way = _FLAGS
        elif column.get("mode") == "REPEATED":
            way = _REPEATED
        elif kind == "STRING" and name not in _SPECIAL_STRINGS:
            way = _TEXT
        elif kind in ("TIMESTAMP", "BOOLEAN") and name not in OWN_COLUMNS:
            way = _AS_IS  # the collector's own: rfc3339 strings, booleans it decided
        else:
            way = _CELL
        ways[name] = (column, way, int(column.get("maxLength") or DETAIL_LIMIT))
    empty = {name: [] if way is _FLAGS else None for name, (_, way, _) in ways.items()}
    return _Plan(ways, empty)


def flags_of(tally: Tally) -> list[str]:
    flags = [f"truncated_{name}" for name in dict.fromkeys(tally.truncated)]
    if tally.dropped_keys:
        flags.append(f"pii_keys_dropped={len(tally.dropped_keys)}")
        flags.extend(f"dropped_key:{name}" for name in list(dict.fromkeys(tally.dropped_keys))[:5])
    if tally.replaced:
        flags.append(f"pii_values_replaced={tally.replaced}")
    if tally.out_of_range:
        flags.append(f"out_of_range_dropped={tally.out_of_range}")
    return flags
