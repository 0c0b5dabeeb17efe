"""Which user agents are bots: the maintained crawler list, headless browsers, and HTTP clients.

ua-parser only knows self-declared crawlers, so `curl`, `python-requests` or HeadlessChrome looked like desktop
visitors and were counted in every analyst table. The crawler list (PyPI `crawler-user-agents`, ~1,500 regexes
written for Python's `re`) is compiled for RE2 as alternations: matching is linear in the user agent's length
whatever the patterns or the input, so a crafted header cannot make a request slow.

The `http-library` entries of that list and the HTTP clients below are kept apart from the rest: on the sGTM
protocols (`data`, `ga4`) a server-side sender with a library's user agent, or none, is expected and says
nothing about the visitor, while on the browser protocol only a script sends them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

# The list's tag for entries that are HTTP libraries rather than crawlers.
LIBRARY_TAG = "http-library"
MAX_LENGTH = 1024  # the same prefix ua-parser reads; real user agents are a few hundred characters

# Headless and automated browsers that announce themselves; the list has some of these too (harmless twice).
HEADLESS = (
    r"HeadlessChrome",
    r"HeadlessEdg",
    r"PhantomJS",
    r"SlimerJS",
    r"Lighthouse",  # Chrome-Lighthouse, PageSpeed Insights' Lighthouse
    r"Puppeteer",
    r"Playwright",
    r"Selenium",
)

# HTTP clients that no browser sends: a library name at the start of a product token, then `/` or the end.
CLIENTS = (
    r"(?i:(?:^|[\s;(,])(?:curl|wget|python-requests|python-urllib\d?|python-httpx|httpx|aiohttp|go-http-client"
    r"|okhttp|java|apache-httpclient|node-fetch|axios|undici|libwww-perl|postmanruntime|httpie)(?:/|\s|$))",
    r"^(?:node|undici)$",  # Node's built-in fetch
)

# Patterns of the list that match real visitors, and the narrower form that still matches every instance the
# list ships for them.
NARROWED = {
    "Sonic": r"Sonic/|RankSonic",  # Slack's desktop app says `Sonic Slack_SSB/4.41`
}


@dataclass(frozen=True)
class Verdict:
    """Why a user agent is a bot: `reason` is None for a visitor. `library`: an HTTP library's user agent, which
    on the sGTM protocols is the sender's and overrides ua-parser's own "Spider" verdict too."""

    reason: str | None
    library: bool = False

    @property
    def is_bot(self) -> bool:
        return self.reason is not None


@dataclass(frozen=True)
class Matchers:
    crawlers: Any  # re2 regex: the list's crawlers and the headless markers
    clients: Any  # re2 regex: the list's HTTP libraries and CLIENTS
    compiled: int  # patterns of the list in the matchers
    skipped: tuple[str, ...]  # patterns of the list RE2 refused
    seconds: float  # build time, paid once per instance on first use


def _alternation(patterns: list[str]) -> str:
    return "|".join(f"(?:{pattern})" for pattern in patterns)


def _options() -> Any:
    import re2

    options = re2.Options()
    options.never_capture = True  # a yes/no answer: no submatches to track
    options.max_mem = 64 << 20  # room for the DFA of ~1,500 alternatives, so it need not fall back to the NFA
    options.log_errors = False  # a refused pattern is counted in Matchers.skipped, not written to stderr
    return options


def _usable(pattern: str) -> bool:
    """RE2 compiles it (no look-around, no back-references) and it does not match every user agent."""
    import re2

    try:
        return re2.compile(pattern, _options()).search("") is None
    except re2.error:
        return False


@cache
def matchers() -> Matchers:
    """Built on first use, not at import: a cold start that serves no request pays nothing for it. The whole
    list is tried at once; only when RE2 refuses it (a new version of the list) is each pattern looked at."""
    started = time.perf_counter()
    import crawleruseragents
    import re2

    options = _options()
    listed = [
        (NARROWED.get(entry["pattern"], entry["pattern"]), LIBRARY_TAG in entry.get("tags", ()))
        for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA
    ]
    skipped: set[str] = set()
    for _ in range(2):  # the whole list; then without what RE2 refuses
        kept = [(pattern, library) for pattern, library in listed if pattern not in skipped]
        try:
            crawlers = re2.compile(_alternation([*HEADLESS, *(p for p, library in kept if not library)]), options)
            clients = re2.compile(_alternation([*CLIENTS, *(p for p, library in kept if library)]), options)
            if not crawlers.search("") and not clients.search(""):
                return Matchers(crawlers, clients, len(kept), tuple(sorted(skipped)), time.perf_counter() - started)
        except re2.error:
            pass
        skipped = {pattern for pattern, _ in listed if not _usable(pattern)}
    raise RuntimeError("the crawler patterns RE2 takes one by one do not compile together")


@lru_cache(maxsize=4096)
def classify(user_agent: str, server_side: bool = False) -> Verdict:
    """`server_side`: the request came from an sGTM container (protocols `data`, `ga4`), where library user
    agents and empty ones are the sender's, not a visitor's; crawlers and headless browsers still count."""
    text = user_agent[:MAX_LENGTH]
    if not text.strip():
        return Verdict(None if server_side else "empty_user_agent")
    found = matchers()
    if found.crawlers.search(text):
        return Verdict("crawler")
    if found.clients.search(text):
        return Verdict(None if server_side else "http_client", library=True)
    return Verdict(None)


def is_bot(user_agent: str, server_side: bool = False) -> bool:
    return classify(user_agent, server_side).is_bot
