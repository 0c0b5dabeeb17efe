"""Cloud Functions source: `functions-framework --source functions/main.py --target collect`."""

import logging

from loyjoy_collector.handler import collect

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

__all__ = ["collect"]
