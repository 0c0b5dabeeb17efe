"""The collector's whole configuration, read once from the environment.

The variable names are a contract with Terraform (`infra/`) and the dev command: change one here and there.
Each field is read from the variable of its name in capitals (`BQ_DATASET`), or from the first of its
`validation_alias` names that is set, in any case; values given to `Settings(...)` win over the environment.
pydantic validates and converts them; pydantic-settings, which did the same, cost a cold start tens of
milliseconds to import.
"""

from __future__ import annotations

import os
import re
from datetime import date
from functools import lru_cache
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

CommaList = tuple[str, ...]  # written `a,b,c` in the environment
GA4_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def _from_environment(fields: dict[str, Any]) -> dict[str, str]:
    """Each field's value as the environment writes it: under its name or its first alias that is set."""
    environment = {name.lower(): value for name, value in os.environ.items()}
    found: dict[str, str] = {}
    for field_name, info in fields.items():
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias or field_name]
        for name in names:
            if isinstance(name, str) and name.lower() in environment:
                found[field_name] = environment[name.lower()]
                break
    return found


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True, validate_by_alias=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**(_from_environment(type(self).model_fields) | values))

    bq_project: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "BQ_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCP_PROJECT", "CLOUDSDK_CORE_PROJECT"
        ),
        description="Project of the dataset; None lets the client library infer it from the credentials.",
    )
    bq_dataset: str = Field(default="loyjoy", pattern=r"^[A-Za-z0-9_]{1,1024}$")
    bigquery_api_endpoint: str | None = Field(
        default=None, description="A local BigQuery's URL; anonymous credentials are used with it."
    )
    bq_location: str = "EU"
    ga4_export_dataset: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_]{1,1024}$",
        description="Dataset of the GA4 BigQuery export (analytics_<property id>) in this project: builds ga4_visits, "
        "chat_impact and chat_conversions.",
    )
    loyjoy_export_dataset: str = Field(
        default="",
        pattern=r"^(([a-z][a-z0-9-]{4,28}[a-z0-9]\.)?[A-Za-z0-9_]+)?$",
        description="Dataset (or project.dataset) of LoyJoy's daily export, for loyjoy_reconciliation; empty: none.",
    )
    ga4_start_date: date | None = Field(
        default=None,
        description="First GA4 export day the refresh reads (its first run only; later runs read new days and the "
        "last three); default: 35 days before the run.",
    )
    ga4_conversion_events: CommaList = Field(
        default=("purchase", "generate_lead"),
        min_length=1,
        max_length=50,
        description="GA4 event names counted as conversions in chat_impact, chat_conversions and experiments.",
    )
    attribution_window_days: int = Field(
        default=30,
        ge=1,
        le=90,
        description="A conversion is attributed to a chat of its client this many days before it at most "
        "(chat_conversions); a transaction id logged again within it counts once.",
    )
    ga4_tables_per_read: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="GA4 export tables one statement of the refresh reads at most (their names are written into "
        "its text); a first run over more reads them in turns.",
    )

    allowed_origins: CommaList = Field(
        default=(), description="Exact origins, '*', or 'https://*.example.com' patterns allowed to send."
    )
    pii_hash_key: SecretStr | None = Field(
        default=None, description="Key of the e-mail HMAC. Without it e-mails are dropped, not hashed."
    )
    pii_allowed_keys: CommaList = Field(
        default=(), description="`detail` keys to keep beyond the built-in analytical ones, e.g. 'quiz_*,city'."
    )
    url_allowed_params: CommaList = Field(
        default=(),
        description="Query parameters page URLs keep beyond utm_* (but utm_term) and ad click ids, e.g. 'page,q'.",
    )
    ip_mode: Literal["drop", "truncate"] = "drop"
    data_paths: CommaList = Field(
        default=("/data",), description="Paths of the Stape Data Client protocol (a tag's custom path included)."
    )
    path_prefixes: CommaList = Field(
        default=("/lj",),
        description="Prefixes a site's reverse proxy may put before every path (https://shop.example.com/lj/...): "
        "first-party delivery, which ad blockers leave alone.",
    )
    non_loyjoy_hits: Literal["ignore", "store"] = Field(
        default="ignore",
        description="sGTM hits that are not LoyJoy events (a GA4 page_view): acknowledged and dropped, or stored.",
    )

    log_format: Literal["auto", "json", "plain"] = Field(
        default="auto", description="auto: JSON lines for Cloud Logging on Cloud Run (K_SERVICE set), else text."
    )

    max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    max_events_per_request: int = Field(default=100, ge=1)
    max_nesting_depth: int = Field(default=16, ge=2)
    max_event_age_days: int = Field(default=28, ge=1, le=30, description="Older client times are clamped.")
    max_future_skew_seconds: int = Field(default=300, ge=0)
    late_days_per_run: int = Field(
        default=3,
        ge=1,
        le=400,
        description="Days before yesterday that one refresh rebuilds at most (late events); the rest wait for the "
        "next runs, so that no sender's late events set the refresh's cost.",
    )
    ids_per_day: int = Field(
        default=500,
        ge=1,
        description="Bots and processes a day that the analyst tables name, per dimension, ranked by distinct "
        "clients (then first seen); the rest are counted under '(other)', so no sender adds groups without bound.",
    )

    rate_limit_address_per_second: float = Field(
        default=50.0, gt=0, description="Requests a second one client address may send to POST / (a NAT's worth)."
    )
    rate_limit_address_burst: int = Field(default=500, ge=1, description="...and at once, after a quiet while.")
    rate_limit_client_per_second: float = Field(
        default=5.0, gt=0, description="Requests a second one client_id (GA4: cid) may send, on every protocol."
    )
    rate_limit_client_burst: int = Field(default=60, ge=1, description="...and at once, after a quiet while.")
    rate_limit_sgtm_address_per_second: float = Field(
        default=500.0,
        gt=0,
        description="Events a second one address may send to the server-side GTM routes (/data, /g/collect): a "
        "container sends every visitor's events from few addresses, so this is far above a browser's.",
    )
    rate_limit_sgtm_address_burst: int = Field(default=5000, ge=1, description="...and at once, after a quiet while.")
    client_address_hop: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Which X-Forwarded-For entry, counted from the end, is the client (1: Cloud Run's own; "
        "2 behind the load balancer). Earlier entries are the sender's to write.",
    )
    header_timeout_seconds: float = Field(
        default=5.0, gt=0, description="A request's line and headers, from their first byte (read by server_limits)."
    )
    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's body, from the end of its headers (read by handler.collect)."
    )
    refusal_budget_per_minute: int = Field(
        default=600, ge=1, description="Refusals an instance stores whole a minute; past it they are counted."
    )
    bq_timeout_seconds: float = Field(default=5.0, gt=0, description="One insertAll HTTP call.")
    bq_retry_deadline_seconds: float = Field(default=10.0, gt=0, description="All retries of one insert.")
    retry_after_seconds: int = Field(default=30, ge=1, description="Retry-After sent with a 503.")
    bq_group_commit: bool = Field(default=True, description="Concurrent requests share insertAll calls.")
    threads: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Worker threads for BigQuery calls that are retried or split (a first try is on the event loop).",
    )

    @field_validator(
        "allowed_origins",
        "pii_allowed_keys",
        "url_allowed_params",
        "data_paths",
        "path_prefixes",
        "ga4_conversion_events",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("ga4_conversion_events", mode="after")
    @classmethod
    def _event_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """GA4's event name rule (a letter, then letters, digits, underscores; 40 at most): the names are written
        into the refresh's SQL as literals, so nothing else may pass."""
        for name in value:
            if not GA4_EVENT_NAME.fullmatch(name):
                raise ValueError(f"not a GA4 event name: {name!r}")
        return value

    @field_validator("path_prefixes", mode="after")
    @classmethod
    def _prefix_form(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """`lj`, `/lj` and `/lj/` are one prefix: `/lj`. `/` alone is no prefix."""
        return tuple(p for p in ("/" + part.strip("/") for part in value) if p != "/")

    @property
    def project(self) -> str | None:
        """A local BigQuery needs some project id; a real one can infer it."""
        if self.bq_project:
            return self.bq_project
        return "loyjoy-local" if self.bigquery_api_endpoint else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
