"""RE2, whose matching time is linear in its input, behind the calls the detectors make.

The collector is a public URL: one crafted 75-byte string must not hold an instance's interpreter for
seconds, as a backtracking engine would (Python's `re` included). RE2 guarantees time linear in the text for
every pattern. Its Python module wraps each match in generators and rebuilds its group-name mapping on every
look-up, which costs more than the match itself on the short strings a row is made of; this calls RE2's
matcher directly. Offsets are UTF-8 byte offsets, which is what RE2 works in: text is sliced as bytes and
decoded per piece, always on character boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import re2

_UNANCHORED = re2._Anchor.UNANCHORED
DEFAULT_SET_MEMORY = 32 << 20  # the one-pass set's automaton; RE2's own default is 8 MiB
_ANCHOR_BOTH = re2._Anchor.ANCHOR_BOTH
_NONE = (-1, -1)


class Match:
    """One match: groups by number or name, byte offsets into `data`."""

    __slots__ = ("_names", "_spans", "data")

    def __init__(self, data: bytes, spans: list[tuple[int, int]], names: dict[str, int]) -> None:
        self.data, self._spans, self._names = data, spans, names

    def group(self, index: int = 0) -> str:
        start, end = self._spans[index]
        return "" if start < 0 else self.data[start:end].decode()

    def named(self, name: str) -> str | None:
        """The group called `name`; None when the pattern has no such group or it took part in no match."""
        index = self._names.get(name)
        if index is None or self._spans[index] == _NONE:
            return None
        start, end = self._spans[index]
        return self.data[start:end].decode()

    def start(self, index: int = 0) -> int:
        return self._spans[index][0]

    def end(self, index: int = 0) -> int:
        return self._spans[index][1]

    def before(self, name: str, count: int) -> str:
        """Up to `count` characters of the text before group `name`."""
        start = self._spans[self._names[name]][0]
        return self.data[max(0, start - 4 * count) : start].decode(errors="ignore")[-count:]


class Pattern:
    def __init__(self, pattern: str) -> None:
        compiled = re2.compile(pattern)  # raises re2.error for what RE2 cannot do (look-around, back-references)
        self.pattern = pattern
        self._regexp = compiled._regexp
        self._names: dict[str, int] = dict(compiled.groupindex)
        self.programsize: int = compiled.programsize

    def _spans(self, data: bytes, position: int, anchor: object = _UNANCHORED) -> list[tuple[int, int]] | None:
        spans = self._regexp.Match(anchor, data, position, len(data))
        return None if spans[0] == _NONE else spans

    def search(self, text: str) -> bool:
        return self._spans(text.encode(), 0) is not None

    def fullmatch(self, text: str) -> bool:
        return self._spans(text.encode(), 0, _ANCHOR_BOTH) is not None

    def finditer(self, text: str) -> Iterator[Match]:
        return self.matches(text.encode())

    def matches(self, data: bytes) -> Iterator[Match]:
        position, size = 0, len(data)
        while position <= size:
            spans = self._spans(data, position)
            if spans is None:
                return
            yield Match(data, spans, self._names)
            start, end = spans[0]
            if end == start:  # an empty match: step over one character
                end += 1
                while end < size and data[end] & 0xC0 == 0x80:
                    end += 1
            position = end

    def subn(self, replace: Callable[[Match], str], text: str) -> tuple[str, int]:
        """`text` with each match replaced by what `replace` returns for it, and how many matches there were."""
        data = text.encode()
        pieces: list[str] = []
        last = found = 0
        for match in self.matches(data):
            start, end = match.start(), match.end()
            pieces.append(data[last:start].decode())
            pieces.append(replace(match))
            last, found = end, found + 1
        if not found:
            return text, 0
        pieces.append(data[last:].decode())
        return "".join(pieces), found

    def sub(self, replace: Callable[[Match], str], text: str) -> str:
        return self.subn(replace, text)[0]

    def split_once(self, text: str) -> list[str]:
        """`text` around its first match: one piece when there is none."""
        data = text.encode()
        spans = self._spans(data, 0)
        if spans is None:
            return [text]
        start, end = spans[0]
        return [data[:start].decode(), data[end:].decode()]


WORD = r"\pL\pN_"  # Python's \w, which RE2 spells out


def bounded(core: str, before: str, after: str) -> str:
    """`core` not preceded by a character of the class `before` nor followed by one of `after`, in RE2. RE2
    has no look-around: the boundary characters are matched as groups of their own (`pre`, `post`), which the
    replacement gives back (`edges`)."""
    return rf"(?:^|(?P<pre>[^{before}]))(?P<v>{core})(?:$|(?P<post>[^{after}]))"


def edges(match: Match, replacement: str) -> str:
    """The replacement between the boundary characters the pattern had to take."""
    return (match.named("pre") or "") + replacement + (match.named("post") or "")


def sub_twice(pattern: Pattern, replace: Callable[[Match], str], text: str) -> str:
    """A boundary character taken by one match (`post`) may be the one the next match needs (`pre`): a second
    pass, only after a first that replaced something, finds those (on a text the first left as it was, a
    second pass would find the same matches again)."""
    replaced, found = pattern.subn(replace, text)
    return pattern.sub(replace, replaced) if found and replaced != text else replaced


class PatternSet:
    """Which of many patterns match a text, in one pass over its UTF-8 bytes (RE2's Set).

    RE2 answers "no match" when its automaton runs out of memory, which would let a text through unlooked-at.
    So the set holds one more pattern that matches every text: an answer without it is no answer, and the
    caller runs every detector (`None`). The memory budget is generous; only a crafted text reaches it."""

    def __init__(self, patterns: list[str], max_mem: int = DEFAULT_SET_MEMORY) -> None:
        options = re2.Options()
        options.max_mem = max_mem
        options.log_errors = False  # running out of memory is answered (None), not written to stderr
        self._set = re2._re2.Set(_UNANCHORED, options)
        for pattern in patterns:
            if self._set.Add(pattern.encode()) < 0:
                raise re2.error(f"RE2 refuses {pattern!r}")
        self._answered = self._set.Add(b"")
        if not self._set.Compile():
            raise re2.error("the patterns do not compile together within the memory budget")
        self.size = len(patterns)

    def matching(self, data: bytes) -> list[int] | None:
        """The indices of the patterns that match somewhere in `data` (unordered, the sentinel among them), or
        None when RE2 could not answer."""
        found: list[int] = self._set.Match(data)
        return found if self._answered in found else None
