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

_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize(text: str) -> str:
    """The normalised text (idempotent: normalize(normalize(t)) == normalize(t))."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # line by line: ~3x faster than one regex over code, whose indentation runs it would try
    text = "\n".join(line.rstrip(" \t\f\v") for line in text.split("\n"))
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n").rstrip()
