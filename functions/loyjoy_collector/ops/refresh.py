"""Refresh of the analyst tables: `models/refresh.sql` with the upsert of each model (`models/<table>.sql`).

The same rendered script runs here and, from Terraform, as the BigQuery scheduled query: one source of SQL.
Each model's header says how its table is partitioned and clustered and which rows a run replaces
(`-- partition by:`, `-- cluster by:`, `-- replaces:`); the steps of `models/upsert/` (build, clear, fill, and
`failed`, what a step that fails records) are written once and filled in per model, as `${build.<table>}` and so
on in refresh.sql: `${steps.<table>}` is the three, `${upsert.<table>}` the three in a block of their own whose
failure `failed` records (`upsert/guard.sql`), so that one table's error leaves the others to be built.
`${sql.<table>}` is a model's SQL whole and `${ga4_reads.<name>}` a statement of `models/ga4_reads/`: the texts
refresh.sql runs by EXECUTE IMMEDIATE with the GA4 export tables of the run written into them.
Terraform (infra/analytics.tf) renders it the same way, step for step.
The script finds its own window (the manifest's watermark); this only fills in the knobs and reports.
Bots are left out of the analyst tables unless `include_bots` is true; None keeps what the last run did, so a
manual run does not undo the choice the scheduled query makes (Terraform's `analytics_include_bots`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from ..sink import BigQuerySink

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# The snippet as browsers get it (the build of snippet/src/loyjoy-collector.js): what it can hold back and when it
# starts a new session are read from it, not written down a second time. Terraform (analytics.tf) reads the same
# file with the same patterns.
SNIPPET = Path(__file__).resolve().parents[1] / "static" / "loyjoy-collector.min.js"
_MAX_QUEUE = re.compile(r"maxQueue:(\d+)")  # its config's default: `maxQueue: 500`
_SESSION_TIMEOUT = re.compile(r"\.last>([0-9.e]+)\)")  # `now - current.last > SESSION_TIMEOUT_MS`, folded
# One file per analyst table, named after it; refresh.sql is the script that builds them all.
MODELS = tuple(sorted(path.stem for path in MODELS_DIR.glob("*.sql") if path.stem != "refresh"))
UPSERT_STEPS = ("build", "clear", "fill")  # models/upsert/<step>.sql, in this order
# What reads GA4's export besides ga4_session_days.sql: a SELECT refresh.sql runs with the run's export tables
# written into its text (`{{ga4_suffixes}}`), filling a scratch table a model reads.
GA4_READS_DIR = MODELS_DIR / "ga4_reads"
GA4_READS = tuple(sorted(path.stem for path in GA4_READS_DIR.glob("*.sql")))
CREATE_STEP = "create"  # models/upsert/create.sql: the table if missing, as its header says (within build)
FAILED_STEP = "failed"  # models/upsert/failed.sql: what the exception handler of a table's block records
# The caught error's text in an exception handler. bqemulator, the local BigQuery, has no @@error.message: its
# script interpreter keeps the message in a variable of this name instead (a stand-in for local runs only).
ERROR_MESSAGE = "@@error.message"
LOCAL_ERROR_MESSAGE = "__error_message__"
MARKER = "LoyJoy analyst refresh:"  # how the error a run with failed steps ends with begins
_PLACEHOLDER = re.compile(r"\$\{([\w.]+)\}")
# A model's settings, one a line of its header: the same pattern as Terraform's regexall() in analytics.tf.
_SETTING = re.compile(r"(?m)^-- (partition by|cluster by|replaces): (.+)$")
NO_GA4_CONVERSIONS = (
    "(SELECT CAST(NULL AS DATE) AS export_day, CAST(NULL AS STRING) AS ga_client_id, "
    "CAST(NULL AS INT64) AS ga_session_id, CAST(NULL AS TIMESTAMP) AS conversion_ts FROM UNNEST([1]) WHERE FALSE)"
)
FULL_DAYS = 36500  # `--full`: every day since 2000
# A model that needs GA4's export says so in its header (`-- requires: ga4_export_dataset`); without the export
# the script never runs its step, and the table is not made.
_REQUIRES = re.compile(r"(?m)^-- requires: (\w+)$")
GA4_START_DAYS = 35  # without ga4_start_date, the first GA4 run reads the export from this many days back


@dataclass(frozen=True)
class SnippetBounds:
    max_queue: int  # events one client's queue holds; past it the oldest go (reported as dropped overflow)
    session_timeout_ms: int  # a pause longer than this starts a new session id


@cache
def snippet_bounds() -> SnippetBounds:
    text = SNIPPET.read_text()
    [queue], [timeout] = _MAX_QUEUE.findall(text), _SESSION_TIMEOUT.findall(text)
    return SnippetBounds(int(queue), int(float(timeout)))


@cache
def model_sql(name: str) -> str:
    return (MODELS_DIR / f"{name}.sql").read_text()


@cache
def ga4_read_sql(name: str) -> str:
    return (GA4_READS_DIR / f"{name}.sql").read_text()


def requires(name: str) -> str | None:
    found = _REQUIRES.search(model_sql(name))
    return found.group(1) if found else None


def built(*, ga4: bool = False, loyjoy_export: bool = False) -> list[str]:
    """The tables a refresh makes with these exports configured."""
    have = {"ga4_export_dataset": ga4}
    return [
        name
        for name in MODELS
        if (name != "loyjoy_reconciliation" or loyjoy_export) and have.get(requires(name) or "", True)
    ]


def sql_strings(values: tuple[str, ...] | list[str]) -> str:
    """An ARRAY<STRING> literal of names already checked to be plain identifiers (settings, Terraform)."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def render(template: str, values: dict[str, Any]) -> str:
    """What Terraform's templatefile() makes of it: only ${name} (or ${map.key}) is replaced."""

    def value(match: re.Match[str]) -> str:
        found: Any = values
        for key in match.group(1).split("."):
            found = found[key]
        return str(found)

    return _PLACEHOLDER.sub(value, template)


def settings(sql: str) -> dict[str, str]:
    """A rendered model's header: partition_by, cluster_by, replaces (the predicate of the rows a run deletes)."""
    found: dict[str, str] = {}
    for key, value in _SETTING.findall(sql):
        name = key.replace(" ", "_")
        if name in found:
            raise ValueError(f"two '-- {key}:' lines in a model")
        found[name] = value.strip()
    return found


def upserts(models: dict[str, str], values: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each step of models/upsert/ per model; `steps`: the three, one after the other; `upsert`: the three in a
    block whose exception handler is `failed` (upsert/guard.sql); `create`: the part of `build` that makes the
    table if missing, from its scratch table, for a model whose scratch table refresh.sql fills itself."""
    named = (CREATE_STEP, *UPSERT_STEPS, FAILED_STEP)  # create first: build includes it
    steps = {step: (MODELS_DIR / "upsert" / f"{step}.sql").read_text() for step in named}
    guard = (MODELS_DIR / "upsert" / "guard.sql").read_text()
    done: dict[str, dict[str, str]] = {step: {} for step in (*named, "steps", "upsert")}
    for name, sql in models.items():
        model = values | settings(sql) | {"table": name, "sql": sql}
        for step, template in steps.items():
            done[step][name] = render(template, model | {"create": done[CREATE_STEP].get(name, "")}).strip()
        done["steps"][name] = "\n".join(done[step][name] for step in UPSERT_STEPS)
        done["upsert"][name] = render(guard, {"steps": done["steps"][name], "failed": done[FAILED_STEP][name]}).strip()
    return done


def sql_bool(value: bool | None) -> str:
    """How Terraform's templatefile() writes a bool, and NULL for "as the last run"."""
    return "NULL" if value is None else str(value).lower()


def script(
    project: str,
    dataset: str,
    *,
    recent_days: int = 0,
    max_age_days: int = 31,
    max_event_age_days: int = 28,
    lookback_minutes: int = 60,
    late_days_per_run: int = 3,
    ids_per_day: int = 500,
    include_bots: bool | None = None,
    loyjoy_export_dataset: str | None = None,
    ga4_export_dataset: str | None = None,
    ga4_start_date: date | None = None,
    ga4_conversion_events: tuple[str, ...] | list[str] = ("purchase", "generate_lead"),
    attribution_window_days: int = 30,
    ga4_tables_per_read: int = 200,
    error_message: str = ERROR_MESSAGE,
    run_at: datetime | None = None,
) -> str:
    """`loyjoy_export_dataset` (dataset or project.dataset of LoyJoy's own export) builds loyjoy_reconciliation;
    without it the script names this dataset in its place and never runs that step. `ga4_export_dataset` (a
    dataset of this project) builds the GA4 tables (ga4_visits, chat_impact, chat_conversions) and the GA4 outcome
    of experiments; without it, likewise, nothing reads GA4. `ga4_start_date`: where a first GA4 run starts
    (None: GA4_START_DAYS before today); `ga4_tables_per_read`: the export tables one statement reads at most.
    `run_at`: the time the run takes as now (default: BigQuery's clock), so that a test can play runs hours or
    days apart."""
    export = loyjoy_export_dataset or ""
    qualified = export if "." in export or not export else f"{project}.{export}"
    values: dict[str, Any] = {"project": project, "dataset": dataset, "error_message": error_message}
    values["loyjoy_export"] = qualified or f"{project}.{dataset}"
    ga4 = bool(ga4_export_dataset)
    values["ga4"] = sql_bool(ga4)
    values["ga4_export"] = f"{project}.{ga4_export_dataset or dataset}"
    # What experiments reads for its GA4 outcome: the conversions table, or no rows of its shape without GA4.
    values["ga4_conversions"] = f"`{project}.{dataset}.ga4_conversions`" if ga4 else NO_GA4_CONVERSIONS
    values["attribution_window_days"] = attribution_window_days
    models = {name: render(model_sql(name), values).strip().rstrip(";") for name in MODELS}
    events = sql_strings(ga4_conversion_events)
    reads = {name: render(ga4_read_sql(name), values | {"ga4_conversion_events": events}).strip() for name in GA4_READS}
    knobs = {
        "recent_days": recent_days,
        "max_age_days": max_age_days,
        "max_event_age_days": max_event_age_days,
        "lookback_minutes": lookback_minutes,
        "late_days_per_run": late_days_per_run,
        "ids_per_day": ids_per_day,
        "include_bots": sql_bool(include_bots),
        "reconcile": sql_bool(bool(export)),
        "max_queue": snippet_bounds().max_queue,
        "session_timeout_ms": snippet_bounds().session_timeout_ms,
        "run_at": f"TIMESTAMP '{run_at.astimezone(UTC).isoformat(sep=' ')}'" if run_at else "CURRENT_TIMESTAMP()",
        "ga4_start_date": (ga4_start_date or date.today() - timedelta(days=GA4_START_DAYS)).isoformat(),
        "ga4_conversion_events": events,
        "ga4_tables_per_read": ga4_tables_per_read,
    }
    texts = {"sql": models, "ga4_reads": reads}  # ${sql.<table>}, ${ga4_reads.<name>}: whole, for EXECUTE IMMEDIATE
    return render(model_sql("refresh"), values | upserts(models, values) | knobs | texts)


def delivery_gap_check(project: str, dataset: str, *, threshold: float, min_clients: int) -> str:
    """The delivery gap alert's query (`models/checks/delivery_gaps.sql`), as Terraform schedules it: it fails
    when yesterday's gap rate in delivery_health passed `threshold` (a share, 0 to 1) with gaps of at least
    `min_clients` distinct clients."""
    values = {"project": project, "dataset": dataset, "threshold": threshold, "min_clients": min_clients}
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
    health_days: int = 0  # days of delivery_health rebuilt: the run's days and the day around each
    failures: tuple[str, ...] = ()  # `table: error` of each step that failed (the others ran)
    late_days_queued: int = 0  # late days past this run's bounded pass, left to the next runs (pending_days)


class RefreshFailed(Exception):
    """Some steps failed; the others ran, and the manifest holds their days for the next run to rebuild."""

    def __init__(self, refreshed: Refreshed) -> None:
        super().__init__(f"{len(refreshed.failures)} step(s) failed: " + "; ".join(refreshed.failures))
        self.refreshed = refreshed


def refresh(
    sink: BigQuerySink,
    *,
    recent_days: int = 0,
    full: bool = False,
    include_bots: bool | None = None,
    loyjoy_export_dataset: str | None = None,
    run_at: datetime | None = None,
) -> Refreshed:
    """`loyjoy_export_dataset`: None takes the sink's settings (LOYJOY_EXPORT_DATASET); the GA4 settings are the
    sink's too. `run_at`: see script()."""
    started = time.monotonic()
    chosen = sink._settings  # the settings the sink was made with
    if loyjoy_export_dataset is None:
        loyjoy_export_dataset = chosen.loyjoy_export_dataset
    sql = script(
        sink.client.project,
        sink.dataset,
        recent_days=FULL_DAYS if full else recent_days,
        include_bots=include_bots,
        loyjoy_export_dataset=loyjoy_export_dataset,
        ga4_export_dataset=chosen.ga4_export_dataset,
        ga4_start_date=chosen.ga4_start_date,
        ga4_conversion_events=chosen.ga4_conversion_events,
        attribution_window_days=chosen.attribution_window_days,
        ga4_tables_per_read=chosen.ga4_tables_per_read,
        error_message=LOCAL_ERROR_MESSAGE if sink._settings.bigquery_api_endpoint else ERROR_MESSAGE,
        run_at=run_at,
        max_event_age_days=sink._settings.max_event_age_days,
        late_days_per_run=sink._settings.late_days_per_run,
        ids_per_day=sink._settings.ids_per_day,
    )
    from google.api_core.exceptions import GoogleAPICallError

    try:
        rows = list(sink.client.query(sql).result())
    except GoogleAPICallError as exc:
        if MARKER not in str(exc):
            raise
        # The run wrote its manifest row and then failed on purpose: what it did is there.
        [last] = [
            dict(row.items())
            for row in sink.client.query(
                f"SELECT run_at, ARRAY_LENGTH(days) AS days, ARRAY_LENGTH(session_days) AS session_days, "
                f"ARRAY_LENGTH(rejected_days) AS rejected_days, (SELECT MIN(d) FROM UNNEST(days) AS d) AS first_day, "
                f"(SELECT MAX(d) FROM UNNEST(days) AS d) AS last_day, bots_included AS include_bots, failures "
                f"FROM `{sink.table_id('refresh_manifest')}` ORDER BY watermark DESC LIMIT 1"
            ).result()
        ]
        raise RefreshFailed(summary(last, started)) from exc
    return summary(dict(rows[-1].items()) if rows else {}, started)


def summary(last: dict[str, Any], started: float) -> Refreshed:
    return Refreshed(
        int(last.get("days") or 0),
        int(last.get("session_days") or 0),
        int(last.get("rejected_days") or 0),
        last.get("first_day"),
        last.get("last_day"),
        time.monotonic() - started,
        bool(last.get("include_bots")),
        int(last.get("health_days") or 0),
        tuple(last.get("failures") or ()),
        int(last.get("late_days_queued") or 0),
    )
