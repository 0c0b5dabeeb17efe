"""What one process builds once and every request uses: settings, privacy, the BigQuery sink, the limits.

Nothing on the request path builds a client or reads configuration per request: `runtime()` does that on
first use (the worker's first request; `functions/main.py` builds it before the fork where that pays). Every
module of the request path takes the `Runtime` it is given; none reaches back to the entry point for it.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import __version__, logs
from .floods import Flusher, RateLimits, RefusalBudget, TokenBuckets
from .privacy.gate import Gate
from .privacy.keys import Scrubber
from .privacy.tally import Tally
from .schema import REJECTED
from .settings import Settings, get_settings
from .sink import BigQuerySink, StorageUnavailable


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    scrubber: Scrubber
    gate: Gate
    sink: BigQuerySink
    stored: logs.StoredCounter
    limits: RateLimits
    budget: RefusalBudget


@cache
def runtime() -> Runtime:
    settings = get_settings()
    key = settings.pii_hash_key.get_secret_value().encode() if settings.pii_hash_key else None
    scrubber = Scrubber(key, frozenset(settings.pii_allowed_keys), frozenset(settings.url_allowed_params))
    gate = Gate(scrubber)
    logs.configure(settings.log_format, settings.project, lambda text: gate.text(text, Tally()))
    # The operator's own values, shown as configured (an endpoint, an origin): no visitor wrote them.
    shown = settings.model_dump(mode="json", exclude={"pii_hash_key"}) | {"pii_hash_key_set": key is not None}
    message = f"collector {__version__} started"
    logs.emit(logging.INFO, message, "start", version=__version__, settings=logs.Configured(shown))
    if key is None:
        logs.emit(logging.WARNING, "PII_HASH_KEY is not set: e-mail addresses are dropped instead of hashed", "config")
    limits = RateLimits(
        TokenBuckets(settings.rate_limit_address_per_second, settings.rate_limit_address_burst),
        TokenBuckets(settings.rate_limit_client_per_second, settings.rate_limit_client_burst),
        TokenBuckets(settings.rate_limit_sgtm_address_per_second, settings.rate_limit_sgtm_address_burst),
    )
    sink = BigQuerySink(settings)
    budget = RefusalBudget(settings.refusal_budget_per_minute)
    flusher = Flusher(budget, lambda rows: store_counts(sink, gate, rows), every=5.0)
    atexit.register(flusher.flush, True)
    return Runtime(settings, scrubber, gate, sink, logs.StoredCounter(), limits, budget)


def store_counts(sink: BigQuerySink, gate: Gate, rows: list[dict[str, Any]]) -> None:
    """The count rows of refusals past the budget, and a log line for each (the log keeps the count too).
    Through the gate like every row: a count row names the path its refusals came to."""
    rows = [gate.seal(REJECTED, row, Tally()) for row in rows]
    for row in rows:
        logs.emit(
            logging.WARNING,
            f"{row['refusals']} refusals past the budget: {row['reason']}",
            "refused_counted",
            reason=row["reason"],
            refusals=row["refusals"],
            rejected_id=row["rejected_id"],
        )
    if sink.insert_until_stored(REJECTED, rows, "rejected_id"):
        raise StorageUnavailable("BigQuery refused the count rows of refusals past the budget")
