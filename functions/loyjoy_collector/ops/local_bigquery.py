"""A local BigQuery for development and tests: bqemulator, started without its GEOGRAPHY extension.

bqemulator insists on downloading DuckDB's `spatial` extension at start-up, which fails offline; nothing
here uses GEOGRAPHY, so that one load step is skipped. Run as
`python -m loyjoy_collector.local_bigquery start --rest-port 9050 ...` (bqemulator's own flags).

With `LOYJOY_LOCAL_BIGQUERY_READS` set to a file, each statement that reads a wildcard table (`events_*`) appends
to it one JSON line: the tables the wildcard was expanded to, and the statement. bqemulator narrows a wildcard
only by a literal filter on its table suffix (`= 'x'`, `IN ('x', ...)`, a range), as BigQuery documents for
constant filters; anything else (a script variable, a subquery) expands to every table. So the file says what
each statement the refresh executed reads of GA4's export, which is what the GA4 tests and bench count.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

READS_LOG = "LOYJOY_LOCAL_BIGQUERY_READS"


def record_wildcard_reads(path: str) -> None:
    from bqemulator.sql.rewriter import wildcard_expander

    narrow = wildcard_expander._apply_table_suffix_pushdown  # bqemulator 1.4.0 (pinned)

    def recorded(table_ids: list[str], prefix: str, bq_sql: str) -> Any:
        tables = narrow(table_ids, prefix, bq_sql)
        with open(path, "a") as log:
            log.write(json.dumps({"prefix": prefix, "tables": sorted(tables), "sql": bq_sql}) + "\n")
        return tables

    wildcard_expander._apply_table_suffix_pushdown = recorded


def keep_string_literals_whole() -> None:
    """bqemulator expands a wildcard table (`FROM ds.events_*` into a UNION ALL of its tables) wherever the pattern
    matches the text, inside a string literal too: a script that builds a statement as text for EXECUTE IMMEDIATE
    would run a mangled one. Here the literals that hold such a pattern are set aside while it expands."""
    from bqemulator.sql import inner_query
    from bqemulator.sql.rewriter.wildcard_expander import _WILDCARD_PATTERN
    from sqlglot.dialects.bigquery import BigQuery
    from sqlglot.tokens import TokenType

    expand = inner_query.expand_wildcard_tables

    def expand_outside_literals(bq_sql: str, project_id: str, catalog: Any) -> str:
        if "*" not in bq_sql:
            return expand(bq_sql, project_id, catalog)
        try:
            tokens = BigQuery().tokenize(bq_sql)
        except Exception:  # text sqlglot cannot split: left to bqemulator, which reports it as before
            return expand(bq_sql, project_id, catalog)
        kept: dict[str, str] = {}
        pieces, done = [], 0
        for token in tokens:
            text = bq_sql[token.start : token.end + 1]
            if token.token_type in (TokenType.STRING, TokenType.RAW_STRING) and _WILDCARD_PATTERN.search(text):
                key = f"'__loyjoy_literal_{len(kept)}__'"
                kept[key] = text
                pieces += [bq_sql[done : token.start], key]
                done = token.end + 1
        if not kept:
            return expand(bq_sql, project_id, catalog)
        expanded = expand("".join(pieces) + bq_sql[done:], project_id, catalog)
        for key, text in kept.items():
            expanded = expanded.replace(key, text, 1)
        return expanded

    inner_query.expand_wildcard_tables = expand_outside_literals


def main(argv: list[str] | None = None) -> None:
    # The Avro extension is another download; off unless asked for.
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    from bqemulator.cli import main as emulator_cli
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    keep_string_literals_whole()
    if os.environ.get(READS_LOG):
        record_wildcard_reads(os.environ[READS_LOG])
    emulator_cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
