"""The BigQuery tables, read from `schema/`: the one description that code, bootstrap, Terraform and
tests all share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schema"
VIEWS_DIR = Path(__file__).parent / "views"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
EVENTS = "events"
REJECTED = "events_rejected"


@dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    fields: list[dict[str, Any]]
    partition_field: str
    clustering: list[str]

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @property
    def limits(self) -> dict[str, int]:
        """Each STRING column's `maxLength`: what the gate truncates a value to (never a refusal)."""
        return {f["name"]: int(f["maxLength"]) for f in self.fields if "maxLength" in f}

    @property
    def bigquery_fields(self) -> list[dict[str, Any]]:
        """The schema as BigQuery gets it: without `maxLength`, which the gate enforces. Adding a maxLength to an
        existing column narrows it, which BigQuery refuses (and Terraform would replace the table for), so the
        deployed tables stay as they were and a limit can change without a migration."""
        return [{k: v for k, v in f.items() if k != "maxLength"} for f in self.fields]


@cache
def tables() -> dict[str, TableSpec]:
    config = json.loads((SCHEMA_DIR / "tables.json").read_text())
    return {
        name: TableSpec(
            name=name,
            description=spec["description"],
            fields=json.loads((SCHEMA_DIR / spec["schema_file"]).read_text()),
            partition_field=spec["time_partitioning"]["field"],
            clustering=spec["clustering"],
        )
        for name, spec in config.items()
    }


@dataclass(frozen=True)
class ViewSpec:
    name: str
    tier: int  # a view reads only tables and views of lower tiers: the order to create them in
    description: str
    requires: str | None
    template: str  # ${project}, ${dataset} (and ${ga4_dataset}, ${ga4_start_suffix}): Terraform's templatefile syntax

    def render(self, values: dict[str, object]) -> str:
        """What Terraform's templatefile() makes of it: only ${name} is replaced (a regex's `$` is left alone)."""
        return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), self.template)


@cache
def views() -> list[ViewSpec]:
    config = json.loads((SCHEMA_DIR / "views.json").read_text())
    specs = [
        ViewSpec(name, spec["tier"], spec["description"], spec.get("requires"), (VIEWS_DIR / f"{name}.sql").read_text())
        for name, spec in config.items()
    ]
    return sorted(specs, key=lambda view: view.tier)
