"""A local BigQuery for development and tests: bqemulator, started without its GEOGRAPHY extension.

bqemulator insists on downloading DuckDB's `spatial` extension at start-up, which fails offline; nothing
here uses GEOGRAPHY, so that one load step is skipped. Run as
`python -m loyjoy_collector.local_bigquery start --rest-port 9050 ...` (bqemulator's own flags).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    # The Avro extension is another download; off unless asked for.
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    from bqemulator.cli import main as emulator_cli
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    emulator_cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
