"""The BigQuery tables, read from `schema/`: the one description that code, bootstrap, Terraform and
tests all share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schema"
VIEWS_DIR = Path(__file__).parent / "views"
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


def views() -> dict[str, str]:
    """View name -> SQL template (with ${project} and ${dataset}, as Terraform's templatefile reads it)."""
    return {path.stem: path.read_text() for path in sorted(VIEWS_DIR.glob("*.sql"))}
