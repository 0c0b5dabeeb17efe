"""Text that analysts group by and export: one value must read as one value, and as text.

Every scalar STRING column (a process name, a label, a UTM source, a page title) becomes a dimension of the
analyst tables and a cell of whatever spreadsheet they are exported to. Two things a visitor can send would
make it lie there:

- Unicode format characters (category Cf: zero-width spaces and joiners, bidi controls, soft hyphens, the byte
  order mark) are invisible: `De\u200bmo` groups apart from `Demo` and reads the same, and a right-to-left
  override shows a name backwards. They are removed from these columns (an emoji sequence loses its joiner:
  the price of one spelling per value). `detail` keeps them: it is read by key, not grouped or shown whole.
- A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
  Google Sheets (OWASP's CSV injection). It gets a leading apostrophe, the spreadsheets' own mark for "this is
  text". A plain number (`-5`, `+3.5`) is left as it is: it computes nothing.
"""

from __future__ import annotations

import re

import re2

_FORMAT_CHARS = re2.compile(r"\p{Cf}")
_FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
TEXT_MARK = "'"


def dimension_text(text: str) -> str:
    if not text.isascii():  # every format character lies outside ASCII
        text = _FORMAT_CHARS.sub("", text)
    if text and text[0] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(text):
        return TEXT_MARK + text
    return text
