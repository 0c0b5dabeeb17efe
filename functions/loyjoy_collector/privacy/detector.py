"""What every value detector is: where it can find something, and how it replaces what it finds.

A detector replaces the values of one kind in a text (`addresses.py`, `phones.py`, `numbers.py`,
`tokens.py`, `urls.py`, `pairs.py`). Its `needs` are RE2 patterns that all match every text the detector
could change: `values.py` matches every detector's needs in one pass over a text and runs only the detectors
whose needs all matched. A need is a necessary condition, never a narrower one: a detector skipped for a
text it would have changed is a personal value stored. So a need is the detector's own pattern without its
boundaries, or something every match of it contains (a character, a word, eight close digits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .tally import Tally


@dataclass(frozen=True, slots=True)
class Look:
    """How one text is looked at: what the detectors count into, and the operator's exceptions."""

    tally: Tally
    allowed: frozenset[str]  # keys whose values a `key=value` pair keeps (normalised)
    strict: bool  # a body that did not parse: the allow-list applies to its pairs and its strings
    urls: frozenset[str]  # query parameters URLs keep beyond utm_* and click ids
    links: bool  # URLs written into the text are cleaned (not in decoded text: a query's `&` would end none)


@dataclass(frozen=True)
class Detector:
    name: str
    needs: tuple[str, ...]  # RE2 patterns that all match every text `replace` could change
    replace: Callable[[str, Look], str]
