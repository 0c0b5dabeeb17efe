"""What the collector adds to an event: device from the user agent, traffic source, a trustworthy time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .schema import EVENTS, tables

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
COLUMN = tables()[EVENTS].limits
WANTED = frozenset((*UTM_KEYS, "gclid"))
LONGEST_KEY = 3 * max(len(key) for key in WANTED)  # every character percent-encoded


@dataclass(frozen=True)
class Device:
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device_type: str | None = None
    is_bot: bool = False


def _version(major: str | None, minor: str | None) -> str | None:
    if not major:
        return None
    return f"{major}.{minor}" if minor else major


def build_parsers() -> None:
    """Build the user-agent parser's and the bot list's matchers now, not on the first request: run by
    functions/main.py before the server forks its worker, so that the worker starts with them and no request
    waits while they are built on the event loop."""
    from . import bots

    bots.classify("Mozilla/5.0", False)
    _parser()


@cache
def _parser() -> Any:
    """ua-parser's rules on RE2 (its Re2Resolver, over the rules' patterns as text): built in about half the
    time of its default resolver, whose rules are compiled eagerly, and half as fast a parse, which the cache
    of `parse_user_agent` pays once per user agent."""
    ua_parser = _import_ua_parser()
    return ua_parser.Parser(ua_parser.Re2Resolver(ua_parser.load_lazy_builtins()))


def _import_ua_parser() -> Any:
    """ua-parser, without the optional modules its package imports when they are installed and the collector
    never uses: PyYAML (a loader for `regexes.yaml` files; the rules here are ua-parser-builtins' module) and
    its Rust resolver (the resolver here is RE2). Together about 20 ms of a cold start's import where they are
    installed (PyYAML is, where the tests run); their names are free again afterwards for anyone who imports
    them."""
    import sys

    hidden = [name for name in ("yaml", "ua_parser_rs") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import fails: ua-parser's fallback
    try:
        import ua_parser
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return ua_parser


@lru_cache(maxsize=4096)
def parse_user_agent(user_agent: str, server_side: bool = False) -> Device:
    """ua-parser and the bot classifier behind a cache: a site's visitors share few user agents. `server_side`:
    sent by an sGTM container, whose own library user agent (or none) is no bot."""
    from .bots import classify  # first use builds its matchers (~20 ms): kept off the cold-start import

    verdict = classify(user_agent, server_side)
    if not user_agent:
        return Device(device_type="bot" if verdict.is_bot else None, is_bot=verdict.is_bot)
    from ua_parser import Domain

    result = _parser()(user_agent[:1024], Domain.ALL).complete()
    agent, system, device = result.user_agent, result.os, result.device
    family = device.family if device else ""
    os_family = system.family if system else None
    spider = family == "Spider" or bool(agent and agent.family.lower().endswith("bot"))
    if verdict.is_bot or (spider and not (server_side and verdict.library)):
        kind = "bot"
    elif "iPad" in family or "Tablet" in family or (os_family == "Android" and "Mobile" not in user_agent):
        kind = "tablet"
    elif os_family in {"iOS", "Android", "Windows Phone", "BlackBerry OS"} or "Mobile" in user_agent:
        kind = "mobile"
    else:
        kind = "desktop"
    return Device(
        browser=agent.family if agent else None,
        browser_version=_version(agent.major, agent.minor) if agent else None,
        os=os_family,
        os_version=_version(system.major, system.minor) if system else None,
        device_type=kind,
        is_bot=kind == "bot",
    )


@dataclass(frozen=True)
class PageParts:
    hostname: str | None
    path: str | None
    utm: Mapping[str, str]  # read-only: one PageParts serves every event from the same page
    gclid: str | None


NO_PAGE = PageParts(None, None, MappingProxyType({}), None)
CACHED_URL = 2048  # longer page addresses are parsed each time: the cache holds at most ~2 MB of them


def page_parts(url: str | None) -> PageParts:
    """The page's host, path, campaign parameters and click id. The events of a visit, and of one batch, mostly
    come from the same few pages: parsed once each."""
    if not url:
        return NO_PAGE
    return _cached_page_parts(url) if len(url) <= CACHED_URL else _page_parts(url)


@lru_cache(maxsize=1024)
def _cached_page_parts(url: str) -> PageParts:
    return _page_parts(url)


def _page_parts(url: str) -> PageParts:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return NO_PAGE
    found = _wanted_parameters(parts.query)
    utm = {key: found[key] for key in UTM_KEYS if key in found}
    return PageParts(hostname, parts.path or None, MappingProxyType(utm), found.get("gclid"))


def _wanted_parameters(query: str) -> dict[str, str]:
    """The first non-empty value of each wanted key, as parse_qs would give it.

    A faceted-search page has hundreds of parameters: ordinary traffic, not an attack, so there is no field
    limit to trip over. Each piece is looked at once, and only a key short enough to be a wanted one is
    decoded (a wanted key is ASCII: at most three characters each, percent-encoded): linear in the query's
    length, which the event's own limit on page_location bounds.
    """
    found: dict[str, str] = {}
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        if not equals or not value or len(name) > LONGEST_KEY:
            continue
        key = unquote_plus(name) if "%" in name or "+" in name else name
        if key in WANTED and key not in found:
            found[key] = unquote_plus(value)[: COLUMN[key]]  # whole: '%C3%A9' is one character of six
    return found


@dataclass(frozen=True)
class Clock:
    event_ts: datetime
    client_ts: datetime | None
    client_sent_at: datetime | None
    skew_ms: int | None
    flags: tuple[str, ...]


def reconcile_clock(
    received_at: datetime,
    client_ts: datetime | None,
    sent_at: datetime | None,
    *,
    max_age: timedelta,
    max_future: timedelta,
) -> Clock:
    """Snowplow's derived timestamp: the client's event time, moved by the client clock's skew.

    A client whose clock is wrong by hours still gets its events ordered right; an absurd result (in the
    future, or older than BigQuery lets us stream into a partition) falls back to the server's time.
    """
    flags: list[str] = []
    skew: timedelta | None = received_at - sent_at if sent_at else None
    if client_ts is None:
        event_ts = received_at
    else:
        try:
            event_ts = client_ts + skew if skew is not None else client_ts
        except OverflowError:  # year 1 or 9999 on a broken clock
            event_ts = datetime.max.replace(tzinfo=received_at.tzinfo)
        if event_ts > received_at + max_future:
            flags.append("client_ts_future")
            event_ts = received_at
        elif event_ts > received_at:
            event_ts = received_at
        elif event_ts < received_at - max_age:
            flags.append("client_ts_too_old")
            event_ts = received_at
    if skew is not None and abs(skew) > timedelta(hours=1):
        flags.append("client_clock_skewed")
    skew_ms = int(skew.total_seconds() * 1000) if skew is not None else None
    return Clock(event_ts, client_ts, sent_at, skew_ms, tuple(flags))
