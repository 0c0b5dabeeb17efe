"""A GA4 BigQuery export of the real shape, made up and deterministic by seed, for the tests and the bench.

GA4 writes one `events_YYYYMMDD` table a day (the property's time zone decides the day) and, while a day is not
complete, an `events_intraday_YYYYMMDD` table; it adds late hits to a daily table for up to three days
(REFERENCE.md §12). The rows here have the export's nested columns: `event_params` (REPEATED key and value
{string_value, int_value, float_value, double_value}), `device`, `ecommerce`, `items`, `traffic_source` (the
user's first acquisition), `collected_traffic_source` (on the first hit of a session that came by a campaign)
and `session_traffic_source_last_click` (newer exports). Columns nobody reads here stay NULL.

`generate()` makes visits (GA4 sessions) at a scale set by days and sessions a day; a test can also build its
own `Visit`s. `Export.tables()` lays the hits out as GA4 would, `seed()` writes them into a (local) BigQuery.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

_VALUE = [
    {"name": "string_value", "type": "STRING"},
    {"name": "int_value", "type": "INTEGER"},
    {"name": "float_value", "type": "FLOAT"},
    {"name": "double_value", "type": "FLOAT"},
]


def _record(name: str, *fields: dict[str, Any] | str, mode: str = "NULLABLE") -> dict[str, Any]:
    return {
        "name": name,
        "type": "RECORD",
        "mode": mode,
        "fields": [{"name": f, "type": "STRING"} if isinstance(f, str) else f for f in fields],
    }


def _column(name: str, kind: str = "STRING") -> dict[str, Any]:
    return {"name": name, "type": kind}


# The export's columns (web stream), in GA4's order; app_info and publisher left out (apps, AdSense).
SCHEMA: list[dict[str, Any]] = [
    _column("event_date"),
    _column("event_timestamp", "INTEGER"),
    _column("event_name"),
    _record("event_params", "key", _record("value", *_VALUE), mode="REPEATED"),
    _column("event_previous_timestamp", "INTEGER"),
    _column("event_value_in_usd", "FLOAT"),
    _column("event_bundle_sequence_id", "INTEGER"),
    _column("event_server_timestamp_offset", "INTEGER"),
    _column("user_id"),
    _column("user_pseudo_id"),
    _record("privacy_info", "analytics_storage", "ads_storage", "uses_transient_token"),
    _record(
        "user_properties", "key", _record("value", *_VALUE, _column("set_timestamp_micros", "INTEGER")), mode="REPEATED"
    ),
    _column("user_first_touch_timestamp", "INTEGER"),
    _record("user_ltv", _column("revenue", "FLOAT"), "currency"),
    _record(
        "device",
        "category",
        "mobile_brand_name",
        "mobile_model_name",
        "mobile_marketing_name",
        "mobile_os_hardware_model",
        "operating_system",
        "operating_system_version",
        "vendor_id",
        "advertising_id",
        "language",
        "is_limited_ad_tracking",
        _column("time_zone_offset_seconds", "INTEGER"),
        "browser",
        "browser_version",
        _record("web_info", "browser", "browser_version", "hostname"),
    ),
    _record("geo", "city", "country", "continent", "region", "sub_continent", "metro"),
    _record("traffic_source", "name", "medium", "source"),
    _column("stream_id"),
    _column("platform"),
    _record("event_dimensions", "hostname"),
    _record(
        "ecommerce",
        _column("total_item_quantity", "INTEGER"),
        _column("purchase_revenue_in_usd", "FLOAT"),
        _column("purchase_revenue", "FLOAT"),
        _column("refund_value_in_usd", "FLOAT"),
        _column("refund_value", "FLOAT"),
        _column("shipping_value_in_usd", "FLOAT"),
        _column("shipping_value", "FLOAT"),
        _column("tax_value_in_usd", "FLOAT"),
        _column("tax_value", "FLOAT"),
        _column("unique_items", "INTEGER"),
        "transaction_id",
    ),
    _record(
        "items",
        "item_id",
        "item_name",
        "item_brand",
        "item_category",
        _column("price", "FLOAT"),
        _column("quantity", "INTEGER"),
        _column("item_revenue", "FLOAT"),
        mode="REPEATED",
    ),
    _record(
        "collected_traffic_source",
        "manual_campaign_id",
        "manual_campaign_name",
        "manual_source",
        "manual_medium",
        "manual_term",
        "manual_content",
        "manual_source_platform",
        "manual_creative_format",
        "manual_marketing_tactic",
        "gclid",
        "dclid",
        "srsltid",
    ),
    _column("is_active_user", "BOOLEAN"),
    _column("batch_event_index", "INTEGER"),
    _column("batch_page_id", "INTEGER"),
    _column("batch_ordering_id", "INTEGER"),
    _record(
        "session_traffic_source_last_click",
        _record(
            "manual_campaign",
            "campaign_id",
            "campaign_name",
            "source",
            "medium",
            "term",
            "content",
            "source_platform",
            "creative_format",
            "marketing_tactic",
        ),
        _record(
            "google_ads_campaign",
            "customer_id",
            "account_name",
            "campaign_id",
            "campaign_name",
            "ad_group_id",
            "ad_group_name",
        ),
    ),
]

STREAM_ID = "4711000001"
SOURCES = [
    ("google", "organic"),
    ("google", "cpc"),
    ("(direct)", "(none)"),
    ("newsletter", "email"),
    ("bing", "organic"),
]
DEVICES = ["desktop", "mobile", "mobile", "tablet"]


@dataclass
class Hit:
    ts: datetime
    name: str
    transaction_id: str | None = None
    revenue: float | None = None
    value: float | None = None  # generate_lead's `value` parameter
    late_days: int = 0  # written to its daily table this many days after the day (GA4's late hits)


@dataclass
class Visit:
    """One GA4 session: (user_pseudo_id, ga_session_id) and its hits."""

    client: str
    session_id: int
    device: str
    source: str
    medium: str
    first_source: tuple[str, str]  # traffic_source: the user's first acquisition, not this session's
    hits: list[Hit] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return min(hit.ts for hit in self.hits)

    @property
    def day(self) -> date:
        """The session's day: the UTC date of its first event."""
        return self.start.date()


def new_client(rng: random.Random) -> str:
    """user_pseudo_id: the `_ga` cookie's last two fields, <random>.<first visit's second>."""
    return f"{rng.randint(10**8, 2 * 10**9)}.{rng.randint(1_600_000_000, 1_800_000_000)}"


def generate(
    seed: int, first_day: date, days: int, sessions_per_day: int, *, returning: float = 0.3, buyers: float = 0.08
) -> list[Visit]:
    """Visits over `days` days from `first_day`: some clients come back (`returning`), some buy (`buyers`, a
    tenth of whose purchases GA4 logs twice), some leave a lead."""
    rng = random.Random(seed)
    visits: list[Visit] = []
    clients: list[tuple[str, tuple[str, str]]] = []
    order = 0
    for offset in range(days):
        day = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) + timedelta(days=offset)
        for n in range(sessions_per_day):
            if clients and rng.random() < returning:
                client, first = rng.choice(clients)
            else:
                first = rng.choice(SOURCES)
                client = new_client(rng)
                clients.append((client, first))
            start = day + timedelta(seconds=rng.randint(0, 86399))
            source, medium = rng.choice(SOURCES)
            visit = Visit(client, int(start.timestamp()) + n % 7, rng.choice(DEVICES), source, medium, first)
            visit.hits.append(Hit(start, "session_start"))
            ts = start
            for _ in range(rng.randint(1, 6)):
                ts += timedelta(seconds=rng.randint(5, 240))
                visit.hits.append(Hit(ts, "page_view"))
            if rng.random() < buyers:
                order += 1
                ts += timedelta(seconds=rng.randint(30, 300))
                revenue = round(rng.uniform(5, 400), 2)
                visit.hits.append(Hit(ts, "purchase", f"T{seed}-{order}", revenue))
                if rng.random() < 0.1:  # the thank-you page reloaded: GA4 logs the purchase again
                    visit.hits.append(Hit(ts + timedelta(seconds=20), "purchase", f"T{seed}-{order}", revenue))
            if rng.random() < 0.03:
                ts += timedelta(seconds=rng.randint(10, 120))
                visit.hits.append(Hit(ts, "generate_lead", value=50.0))
            visits.append(visit)
    return visits


def _params(**values: str | int | float) -> list[dict[str, Any]]:
    params = []
    for key, value in values.items():
        slot = "string_value" if isinstance(value, str) else "int_value" if isinstance(value, int) else "double_value"
        params.append({"key": key, "value": {slot: value}})
    return params


def rows(visit: Visit, tz_hours: int = 1) -> list[tuple[date, Hit, dict[str, Any]]]:
    """(export day, hit, row) for each hit: the export day is the hit's date in the property's time zone."""
    out = []
    ordered = sorted(visit.hits, key=lambda h: h.ts)
    campaign = visit.source not in ("(direct)",)
    for number, hit in enumerate(ordered):
        local = hit.ts + timedelta(hours=tz_hours)
        params = _params(
            ga_session_id=visit.session_id,
            ga_session_number=1,
            page_location=f"https://shop.example.com/p/{number}",
            page_title="Shop",
            engaged_session_event=1,
            engagement_time_msec=1200 + number,
            session_engaged="1",
            batch_page_id=number,
        )
        if hit.name == "generate_lead" and hit.value is not None:
            params += _params(value=float(hit.value), currency="EUR")
        first = number == 0
        row: dict[str, Any] = {
            "event_date": local.strftime("%Y%m%d"),
            "event_timestamp": int(hit.ts.timestamp()) * 1_000_000 + hit.ts.microsecond,
            "event_name": hit.name,
            "event_params": params,
            "event_bundle_sequence_id": number,
            "user_pseudo_id": visit.client,
            "privacy_info": {"analytics_storage": "Yes", "ads_storage": "Yes", "uses_transient_token": "No"},
            "user_first_touch_timestamp": int(visit.start.timestamp()) * 1_000_000,
            "device": {
                "category": visit.device,
                "operating_system": "Android" if visit.device == "mobile" else "Windows",
                "language": "de-de",
                "browser": "Chrome",
                "browser_version": "131.0",
                "web_info": {"browser": "Chrome", "browser_version": "131.0", "hostname": "shop.example.com"},
            },
            "geo": {"city": "Berlin", "country": "Germany", "continent": "Europe", "region": "Berlin"},
            "traffic_source": {"name": "(organic)", "source": visit.first_source[0], "medium": visit.first_source[1]},
            "stream_id": STREAM_ID,
            "platform": "WEB",
            "is_active_user": True,
            "session_traffic_source_last_click": {
                "manual_campaign": {"source": visit.source, "medium": visit.medium, "campaign_name": "(organic)"}
            },
            # Only the hit that brought the visit carries what it was collected with.
            "collected_traffic_source": {"manual_source": visit.source, "manual_medium": visit.medium}
            if first and campaign
            else None,
        }
        if hit.name == "purchase":
            row["ecommerce"] = {
                "transaction_id": hit.transaction_id,
                "purchase_revenue": hit.revenue,
                "purchase_revenue_in_usd": hit.revenue,
                "total_item_quantity": 1,
                "unique_items": 1,
            }
            row["items"] = [{"item_id": "sku-1", "item_name": "Kaffeemaschine", "price": hit.revenue, "quantity": 1}]
        out.append((local.date(), hit, row))
    return out


@dataclass
class Export:
    visits: list[Visit]
    tz_hours: int = 1

    def tables(self, *, through: date | None = None, intraday: Iterable[date] = ()) -> dict[str, list[dict[str, Any]]]:
        """The export's tables as GA4 has written them by the end of day `through` (the newest daily table):
        a day's daily table, with the late hits that have arrived by then; the days in `intraday` (after
        `through`) as intraday tables."""
        intraday = set(intraday)
        found: dict[str, list[dict[str, Any]]] = {}
        for visit in self.visits:
            for day, hit, row in rows(visit, self.tz_hours):
                if day in intraday:
                    found.setdefault(f"intraday_{day:%Y%m%d}", []).append(row)
                elif through is None or day + timedelta(days=hit.late_days) <= through:
                    found.setdefault(f"{day:%Y%m%d}", []).append(row)
        return found


def seed(client: Any, dataset: str, tables: dict[str, list[dict[str, Any]]], *, replace: bool = True) -> None:
    """Writes `tables` (suffix -> rows) as events_<suffix> into `dataset` (project.dataset). `replace`: a table
    already there is written anew (a daily table that gained late hits, or an intraday table)."""
    from google.cloud import bigquery

    schema = [bigquery.SchemaField.from_api_repr(spec) for spec in SCHEMA]
    for suffix, found in sorted(tables.items()):
        table = f"{dataset}.events_{suffix}"
        if replace:
            client.delete_table(table, not_found_ok=True)
        client.create_table(bigquery.Table(table, schema=schema), exists_ok=True)
        for start in range(0, len(found), 5000):
            errors = client.insert_rows_json(table, found[start : start + 5000])
            assert not errors, errors[:3]


def drop(client: Any, dataset: str, suffixes: Iterable[str]) -> None:
    """GA4 deletes a day's intraday table once its daily table is complete."""
    for suffix in suffixes:
        client.delete_table(f"{dataset}.events_{suffix}", not_found_ok=True)
