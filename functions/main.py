"""Cloud Functions source: `functions-framework --source functions/main.py --target collect`.

`collect` is an ASGI function (functions_framework.aio.http): functions-framework serves it with uvicorn in
gunicorn's arbiter, on one event loop per instance, here and in the deployment alike.
"""

import logging

from loyjoy_collector import asgi, enrich, server_limits
from loyjoy_collector.handler import collect

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

# Imported by functions-framework before it starts gunicorn: its uvicorn worker gets a deadline and a size limit
# for each request's head (HEADER_TIMEOUT_SECONDS, MAX_BODY_BYTES); the body's deadline is collect's own.
server_limits.install()
# ... and serves each HTTP request through the bare ASGI path (asgi.py), not functions-framework's Starlette app.
asgi.install()

# Built here, in the process that forks the worker, rather than on the worker's first request: the worker
# inherits them ready (nothing in them is a thread or a connection), and no request waits on the event loop
# while the user-agent parser compiles its rules.
enrich.build_parsers()

__all__ = ["collect"]
