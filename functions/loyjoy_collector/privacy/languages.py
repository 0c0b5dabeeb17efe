"""Languages: a language column (and `ul`, `locale` anywhere) holds BCP 47 tags, nothing else.

An `Accept-Language` header or a `language` field is the sender's to write: a name written there (`Erika
Mustermann`, `Max`) is no language, and goes.
"""

from __future__ import annotations

from .tally import Tally

# Three-letter primary language subtags browsers send (BCP 47 prefers two letters where ISO 639-1 has them):
# a closed list, so that `Max` or `Eva` in an Accept-Language header is no language.
_THREE_LETTER_LANGUAGES = frozenset(
    {
        "ast",
        "ceb",
        "chr",
        "ckb",
        "fil",
        "gsw",
        "haw",
        "hmn",
        "kok",
        "mai",
        "mni",
        "sat",
        "yue",
        "zgh",
        "bas",
        "dua",
        "ewo",
        "kab",
        "kam",
        "kln",
        "luo",
        "nus",
        "ses",
        "twq",
        "wae",
    }
)


def _language_tag(tag: str) -> bool:
    """`de`, `de-DE`, `zh-Hant-TW`, `es-419`, `*`: language, optional script, optional region."""
    if tag == "*":
        return True
    parts = tag.split("-")
    primary = parts[0].lower()
    if not (primary.isascii() and primary.isalpha()):
        return False
    if not (len(primary) == 2 or primary in _THREE_LETTER_LANGUAGES):
        return False
    rest = parts[1:]
    if rest and len(rest[0]) == 4 and rest[0].isascii() and rest[0].isalpha():
        rest = rest[1:]  # script
    if rest and (
        (len(rest[0]) == 2 and rest[0].isascii() and rest[0].isalpha()) or (len(rest[0]) == 3 and rest[0].isdigit())
    ):
        rest = rest[1:]  # region
    return not rest


def language_tags(text: str, tally: Tally) -> str | None:
    """A language column holds BCP 47 tags (an Accept-Language list, `q` weights dropped), nothing else."""
    tags: list[str] = []
    for item in text.split(",")[:10]:
        tag = item.split(";", 1)[0].strip().replace("_", "-")  # `de_DE`, as locales are often written
        if not tag:
            continue
        if _language_tag(tag):
            tags.append(tag)
        else:
            tally.replaced += 1
    return ",".join(tags) or None
