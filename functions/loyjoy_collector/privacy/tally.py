"""What one row lost on its way in, counted by every layer of privacy and reported in `quality_flags`."""

from __future__ import annotations


class Tally:
    """What one row lost on its way in: reported in its `quality_flags`."""

    __slots__ = ("dropped_keys", "out_of_range", "replaced", "truncated")

    def __init__(self) -> None:
        self.replaced = 0  # personal values replaced in strings
        self.dropped_keys: list[str] = []  # keys not on the allow-list, and secrets
        self.out_of_range = 0  # numbers BigQuery could not hold, dropped
        self.truncated: list[str] = []  # columns cut to their length limit
