"""Create or update the dataset, tables and views, idempotently, in whatever BigQuery the settings name.

Terraform does the same from the same files in a real project; this is for local runs, tests and users
who deploy without Terraform. Existing tables only ever gain columns: nothing is dropped or retyped.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..schema import tables, views
from ..settings import Settings
from ..sink import BigQuerySink
from .refresh import MODELS, built, refresh


def _schema(fields: list[dict[str, Any]]) -> list[Any]:
    from google.cloud import bigquery

    return [bigquery.SchemaField.from_api_repr(spec) for spec in fields]


_SQL_TYPES = {"BOOLEAN": "BOOL", "INTEGER": "INT64", "FLOAT": "FLOAT64"}


def _add_columns_ddl(table_id: str, fields: list[dict[str, Any]]) -> list[str]:
    """The same new columns as DDL. BigQuery has them already from the schema update (IF NOT EXISTS: nothing
    happens); the local BigQuery records a schema update without adding the column to its storage, and every
    insert would then fail. Records are left to the schema update alone."""
    statements = []
    for field in fields:
        if field["type"] in ("RECORD", "STRUCT"):
            continue
        kind = _SQL_TYPES.get(field["type"], field["type"])
        if field.get("mode") == "REPEATED":
            kind = f"ARRAY<{kind}>"
        statements.append(f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS {field['name']} {kind}")
    return statements


def bootstrap(settings: Settings, sink: BigQuerySink | None = None) -> list[str]:
    """Returns what it did, one line per object, for the command line."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    client = (sink or BigQuerySink(settings)).client
    done: list[str] = []
    dataset_id = f"{client.project}.{settings.bq_dataset}"
    dataset = bigquery.Dataset(dataset_id)
    dataset.location = settings.bq_location
    client.create_dataset(dataset, exists_ok=True)
    done.append(f"dataset {dataset_id}")

    for name, spec in tables().items():
        table_id = f"{dataset_id}.{name}"
        try:
            existing = client.get_table(table_id)
        except NotFound:
            table = bigquery.Table(table_id, schema=_schema(spec.bigquery_fields))
            table.description = spec.description
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=spec.partition_field
            )
            table.clustering_fields = spec.clustering or None
            client.create_table(table)
            done.append(f"table {table_id}: created")
            continue
        have = {field.name for field in existing.schema}
        missing = [field for field in spec.bigquery_fields if field["name"] not in have]
        if missing:
            existing.schema = [*existing.schema, *_schema(missing)]
            client.update_table(existing, ["schema"])
            for statement in _add_columns_ddl(table_id, missing):
                client.query(statement).result()
            done.append(f"table {table_id}: added {', '.join(f['name'] for f in missing)}")
        else:
            done.append(f"table {table_id}: up to date")

    for name in MODELS:  # the analyst tables used to be views of these names
        try:
            if client.get_table(f"{dataset_id}.{name}").table_type == "VIEW":
                client.delete_table(f"{dataset_id}.{name}")
                done.append(f"view {dataset_id}.{name}: dropped (now a table)")
        except NotFound:
            pass
    ran = refresh(
        BigQuerySink(settings) if sink is None else sink, loyjoy_export_dataset=settings.loyjoy_export_dataset
    )
    made = built(ga4=bool(settings.ga4_export_dataset), loyjoy_export=bool(settings.loyjoy_export_dataset))
    done.append(f"analyst tables: {', '.join(made)} refreshed ({ran.days} days)")

    values = {
        "project": client.project,
        "dataset": settings.bq_dataset,
        "ga4_dataset": settings.ga4_export_dataset or "",
        "ga4_start_suffix": (settings.ga4_start_date or date.today() - timedelta(days=35)).strftime("%Y%m%d"),
    }
    for spec in views():
        if spec.requires == "ga4_dataset" and not settings.ga4_export_dataset:
            done.append(f"view {spec.name}: skipped (GA4_EXPORT_DATASET is not set)")
            continue
        view_id = f"{dataset_id}.{spec.name}"
        query = spec.render(values)
        try:
            existing = client.get_table(view_id)
        except NotFound:
            view = bigquery.Table(view_id)
            view.view_query = query
            view.description = spec.description
            client.create_table(view)
            done.append(f"view {view_id}: created")
            continue
        if existing.view_query != query:
            existing.view_query = query
            client.update_table(existing, ["view_query"])
            done.append(f"view {view_id}: updated")
        else:
            done.append(f"view {view_id}: up to date")
    return done
