"""Refresh of the analyst tables: `models/refresh.sql` with the model files (`models/<table>.sql`) filled in.

The same rendered script runs here and, from Terraform, as the BigQuery scheduled query: one source of SQL.
The script finds its own window (the manifest's watermark); this only fills in the knobs and reports.
Bots are left out of the analyst tables unless `include_bots` is true; None keeps what the last run did, so a
manual run does not undo the choice the scheduled query makes (Terraform's `analytics_include_bots`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..sink import BigQuerySink

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# One file per analyst table, named after it; refresh.sql is the script that builds them all.
MODELS = tuple(sorted(path.stem for path in MODELS_DIR.glob("*.sql") if path.stem != "refresh"))
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
FULL_DAYS = 36500  # `--full`: every day since 2000


@cache
def model_sql(name: str) -> str:
    return (MODELS_DIR / f"{name}.sql").read_text()


def render(template: str, values: dict[str, Any]) -> str:
    """What Terraform's templatefile() makes of it: only ${name} is replaced."""
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def sql_bool(value: bool | None) -> str:
    """How Terraform's templatefile() writes a bool, and NULL for "as the last run"."""
    return "NULL" if value is None else str(value).lower()


def script(
    project: str,
    dataset: str,
    *,
    recent_days: int = 0,
    max_age_days: int = 31,
    lookback_minutes: int = 60,
    include_bots: bool | None = None,
    loyjoy_export_dataset: str | None = None,
) -> str:
    """`loyjoy_export_dataset` (dataset or project.dataset of LoyJoy's own export) builds loyjoy_reconciliation;
    without it the script names this dataset in its place and never runs that step."""
    export = loyjoy_export_dataset or ""
    qualified = export if "." in export or not export else f"{project}.{export}"
    values: dict[str, Any] = {"project": project, "dataset": dataset}
    values["loyjoy_export"] = qualified or f"{project}.{dataset}"
    models = {name: render(model_sql(name), values).strip().rstrip(";") for name in MODELS}
    knobs = {
        "recent_days": recent_days,
        "max_age_days": max_age_days,
        "lookback_minutes": lookback_minutes,
        "include_bots": sql_bool(include_bots),
        "reconcile": sql_bool(bool(export)),
    }
    return render(model_sql("refresh"), values | models | knobs)


def delivery_gap_check(project: str, dataset: str, *, threshold: float, min_events: int) -> str:
    """The delivery gap alert's query (`models/checks/delivery_gaps.sql`), as Terraform schedules it: it fails
    when yesterday's gap rate in delivery_health passed `threshold` (a share, 0 to 1)."""
    values = {"project": project, "dataset": dataset, "threshold": threshold, "min_events": min_events}
    return render((MODELS_DIR / "checks" / "delivery_gaps.sql").read_text(), values)


@dataclass(frozen=True)
class Refreshed:
    days: int
    session_days: int
    rejected_days: int
    first_day: Any
    last_day: Any
    seconds: float
    include_bots: bool = False
    health_days: int = 0  # days of delivery_health rebuilt: the run's days and those whose gaps a late event filled


def refresh(
    sink: BigQuerySink,
    *,
    recent_days: int = 0,
    full: bool = False,
    include_bots: bool | None = None,
    loyjoy_export_dataset: str | None = None,
) -> Refreshed:
    """`loyjoy_export_dataset`: None takes the sink's settings (LOYJOY_EXPORT_DATASET)."""
    started = time.monotonic()
    if loyjoy_export_dataset is None:
        loyjoy_export_dataset = sink._settings.loyjoy_export_dataset  # the settings the sink was made with
    sql = script(
        sink.client.project,
        sink.dataset,
        recent_days=FULL_DAYS if full else recent_days,
        include_bots=include_bots,
        loyjoy_export_dataset=loyjoy_export_dataset,
    )
    rows = list(sink.client.query(sql).result())
    last = dict(rows[-1].items()) if rows else {}
    return Refreshed(
        int(last.get("days") or 0),
        int(last.get("session_days") or 0),
        int(last.get("rejected_days") or 0),
        last.get("first_day"),
        last.get("last_day"),
        time.monotonic() - started,
        bool(last.get("include_bots")),
        int(last.get("health_days") or 0),
    )
