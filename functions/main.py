"""Cloud Functions source: `functions-framework --source functions/main.py --target collect`."""

import logging

from loyjoy_collector import server_limits
from loyjoy_collector.handler import collect

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

# Imported by functions-framework before it starts gunicorn: its worker gets header and body deadlines
# (HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS), so slow senders cannot hold the THREADS threads.
server_limits.install()

__all__ = ["collect"]
