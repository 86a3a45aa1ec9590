"""Stage 1: Unicode normalisation (NFC) and whitespace clean-up.

NFC makes the same text typed two ways (a precomposed "é" or "e" plus a combining accent) one
string, so the exact-dedup hash and the tokenizer see it once. The whitespace rules keep
what matters in code (indentation, tabs, single blank lines) and drop what does not:
Windows and old-Mac line ends become `\\n`, trailing spaces go, runs of blank lines become one,
and blank lines at either end go.
"""

from __future__ import annotations

import re
import unicodedata

_TRAILING = re.compile(r"[ \t\f\v]+(?=\n)")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """The normalised text (idempotent: normalize(normalize(t)) == normalize(t))."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING.sub("", text + "\n")
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n").rstrip()
