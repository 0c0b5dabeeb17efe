"""The ranges a number in `detail` may take, so that no sender can move a sum or an average by much.

An analyst sums `value` and averages `nps`. One visitor's `"nps": 1e308` would make every average infinite and
one `"value": 9223372036854775807` would overflow every sum of INT64 it joins. Known measures get the range
their meaning allows; any other number gets a range whose sums stay exact in FLOAT64 and within INT64 over
thousands of rows. Identifiers and timestamps (keys ending in `_id`, `_ts`, `_ms` ...) are not measures: no
one sums them, and their digits must stay as sent. A number outside its range is dropped from the row and
counted in `quality_flags` (`out_of_range_dropped=N`): one bad number does not cost the event.
"""

from __future__ import annotations

DAY_MS = 86_400_000
MONTH_MS = 31 * DAY_MS  # no chat lasts longer, and no event arrives later (MAX_EVENT_AGE_DAYS)

# Keys in lower case, letters and digits only: `nps_score`, `npsScore` and `ep.nps_score` are one key.
RANGES: dict[str, tuple[float, float]] = {
    # LoyJoy's surveys and quizzes
    "nps": (0, 10),
    "npsscore": (0, 10),
    "rating": (0, 10),
    "score": (-1_000_000, 1_000_000),
    # amounts of money: a refund may be negative
    "value": (-10_000_000, 10_000_000),
    "amount": (-10_000_000, 10_000_000),
    "price": (-10_000_000, 10_000_000),
    "revenue": (-10_000_000, 10_000_000),
    # counts and positions
    "count": (0, 1_000_000),
    "index": (0, 1_000_000),
    "position": (0, 1_000_000),
    "step": (0, 1_000_000),
    "percentscrolled": (0, 100),
    # durations
    "duration": (0, MONTH_MS),
    "durationms": (0, MONTH_MS),
    "engagementtimemsec": (0, MONTH_MS),
    "screentime": (0, MONTH_MS),
    "seconds": (0, MONTH_MS // 1000),
}
# Any other measure: sums of thousands of them stay exact in FLOAT64 (2^53) and within INT64.
OTHER = (-(10**15), 10**15)
# Identifiers and times, by the last word of their key (`order_id`, `createdAt`, `duration_ms` is a measure though):
# digits, not quantities. Only INT64 holds them.
NOT_MEASURES = frozenset(
    {"id", "ids", "ts", "ms", "msec", "time", "timestamp", "at", "date", "epoch", "sec", "sku", "code"}
)


def _words(key: str) -> tuple[str, str]:
    """(the key normalised, its last word): `ep.orderId` -> ("orderid", "id"), `points` -> ("points", "points")."""
    name = key.rpartition(".")[2]
    last = name
    for separator in "_- ":
        last = last.rpartition(separator)[2] or last
    upper = max((i for i, ch in enumerate(last) if ch.isupper()), default=-1)
    if upper > 0 and not last.isupper():
        last = last[upper:]
    return "".join(ch for ch in name.lower() if ch.isalnum()), last.lower()


def within(key: str, value: float) -> bool:
    """True when `value`, found under `key` (as sent: `nps`, `epn.value`, `orderId`), may be kept."""
    name, last = _words(key)
    bounds = RANGES.get(name)
    if bounds is None:
        if last in NOT_MEASURES or name in NOT_MEASURES:
            return True
        bounds = OTHER
    return bounds[0] <= value <= bounds[1]
