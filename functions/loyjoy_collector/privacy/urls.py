"""What a page URL keeps: scheme, host, path and the query parameters analytics is made of; nothing else.

A URL is where sites leak what they should not: `?password=`, `#access_token=`, `?customer=Erika`, a search
engine's `?q=` with the name somebody searched for. No detector can tell a name in `?user=` from a product, so
the query is an allow-list, like the keys of an object: `utm_*` (but `utm_term`, which carries what people
typed into a search box), Google's and the ad networks' click ids, and the operator's own
(`URL_ALLOWED_PARAMS`). Other parameters keep their key (a parameter's presence is analytics) and lose their
value. Fragments go (single-page apps put tokens there), and so does `user:password@`. A search engine's
referrer keeps its host. The path is kept and passes the value detectors with the rest of the column.

A URL written into text (a label, a title, a refused body) keeps the same; it runs up to a space, a quote or a
bracket. Linear in the URL: one split on `&`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

from .detector import Detector, Look
from .engine import Pattern
from .placeholders import REDACTED
from .tally import Tally

CLICK_IDS = frozenset(
    {
        "gclid",
        "gbraid",
        "wbraid",
        "dclid",
        "gclsrc",
        "srsltid",
        "fbclid",
        "msclkid",
        "ttclid",
        "twclid",
        "li_fat_id",
        "yclid",
        "epik",
        "sccid",
        "rdt_cid",
        "mc_cid",
        "mc_eid",
    }
)
# `utm_term` is left out on purpose: it holds search keywords, and a keyword may be a person's name.
UTM_EXCLUDED = frozenset({"utm_term"})
SEARCH_ENGINES = (
    "google.",
    "bing.com",
    "duckduckgo.com",
    "search.yahoo.",
    "yahoo.com",
    "ecosia.org",
    "yandex.",
    "baidu.com",
    "qwant.com",
    "startpage.com",
    "search.brave.com",
    "ask.com",
    "search.aol.",
    "suche.web.de",
    "suche.t-online.de",
    "search.gmx.",
    "naver.com",
    "seznam.cz",
    "metager.org",
    "perplexity.ai",
)


def parameter_allowed(key: str, extra: frozenset[str]) -> bool:
    name = key.strip().lower()
    if name in extra:
        return True
    if name in UTM_EXCLUDED:
        return False
    return name.startswith("utm_") or name in CLICK_IDS


# A search engine's name at the start of the host or after a dot (one alternation of literals: no backtracking).
_SEARCH_ENGINE = re.compile("(?:^|\\.)(?:" + "|".join(re.escape(name) for name in SEARCH_ENGINES) + ")")


def search_engine(host: str) -> bool:
    return _SEARCH_ENGINE.search(host.lower()) is not None


def looks_like_url(text: str) -> bool:
    head = text[:12].lower()
    return head.startswith(("http://", "https://", "//")) or (head.startswith("/") and ("?" in text or "#" in text))


def clean_url(url: str, tally: Tally, extra_params: frozenset[str] = frozenset()) -> str:
    """The URL without secrets: see the module's docstring. Text that is no URL is given back as it is."""
    if not looks_like_url(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a damaged authority (`http://[::1`, a port past 65535): nothing in it is trustworthy
        tally.replaced += 1
        return REDACTED
    if parts.fragment:
        tally.replaced += 1
    authority = host + (f":{port}" if port else "")
    if parts.netloc and "@" in parts.netloc:
        tally.replaced += 1  # user:password@
    if host and search_engine(host):
        if parts.path not in ("", "/") or parts.query:
            tally.replaced += 1
        return f"{parts.scheme}://{authority}/" if parts.scheme else f"//{authority}/"
    kept: list[str] = []
    for pair in parts.query.split("&") if parts.query else ():
        key, equals, value = pair.partition("=")
        name = unquote_plus(key) if "%" in key or "+" in key else key
        if not equals or not value or parameter_allowed(name, extra_params):
            kept.append(pair)
        else:
            tally.replaced += 1
            kept.append(f"{key}={REDACTED}")
    prefix = f"{parts.scheme}:" if parts.scheme else ""
    prefix += f"//{authority}" if parts.netloc else ""
    return prefix + parts.path + ("?" + "&".join(kept) if kept else "")


_LINK = Pattern(r"(?i)https?://[^\s\"'<>()\[\]{}\\|^`]+")


def _links(text: str, look: Look) -> str:
    if not look.links:
        return text
    return _LINK.sub(lambda match: clean_url(match.group(0), look.tally, look.urls), text)


LINKS = Detector("URLs in text", ("://",), _links)
