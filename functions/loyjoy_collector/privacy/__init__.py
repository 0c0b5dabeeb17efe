"""Privacy, in one package: nothing personal reaches a table or a log line.

- `keys.py`: which keys of a sender's object are kept (an allow-list), and the `Scrubber` that applies it;
- `values.py`: personal values found by their shape in any text, whatever key carried them, in one pass;
  a module per kind of value: `addresses.py` (e-mail, IP, street), `phones.py`, `numbers.py` (IBAN, cards,
  JSON numbers), `tokens.py` (JWT, base64), `urls.py`, `pairs.py` (`key=value`, bodies that did not parse),
  `languages.py`; `names.py` the words that make a key personal, `engine.py` RE2;
- `urls.py`: what a page URL keeps (scheme, host, path, allowed query parameters);
- `hashing.py`: the one keyed hash (e-mail hashes and `pii-` pseudonyms), shared with erasure;
- `tally.py`: what a row lost, counted by every layer and reported in its `quality_flags`;
- `gate.py`: the row boundary every column of every row passes on its way to BigQuery;
- `ip.py`: visitor addresses cut to a network.
"""

from .gate import Gate
from .keys import Scrubber
from .tally import Tally

__all__ = ["Gate", "Scrubber", "Tally"]
