"""Stage 4: quality filters in the spirit of Gopher (Rae et al. 2021, appendix A).

Each document gets its scores, and its fate is the first setting it fails, in this order:

- `words` (whitespace-separated): `min_words` 50, `max_words` 100,000 (Gopher's bounds);
- `mean_word_length` (characters per word): `min_mean_word_length` 3,
  `max_mean_word_length` 10;
- `symbol_ratio` (Gopher's symbol-to-word ratio: `#` per word or ellipses per word,
  whichever is larger): `max_symbol_ratio` 0.1;
- `bullet_lines` (share of lines starting with -, * or •): `max_bullet_lines` 0.9;
- `ellipsis_lines` (share of lines ending in ... or …): `max_ellipsis_lines` 0.3;
- `dup_lines` (share of lines repeating an earlier line, Gopher's duplicate line
  fraction): `max_dup_lines` 0.3.

Lines are the non-blank lines, compared as they are (indentation included), as Gopher does.
These are written here rather than taken from datatrove's `GopherQualityFilter` and
`GopherRepetitionFilter`: those return only pass/fail and the first failed rule, where
`stages.parquet` keeps every score, and they split words with spaCy (docs/prepare.md).
"""

from __future__ import annotations

from typing import Any

SCORES = ("words", "mean_word_length", "symbol_ratio", "bullet_lines", "ellipsis_lines",
          "dup_lines")
# (score, setting, True when the setting is a lower bound), in the order fates are given
RULES = (("words", "min_words", True), ("words", "max_words", False),
         ("mean_word_length", "min_mean_word_length", True),
         ("mean_word_length", "max_mean_word_length", False),
         ("symbol_ratio", "max_symbol_ratio", False),
         ("bullet_lines", "max_bullet_lines", False),
         ("ellipsis_lines", "max_ellipsis_lines", False),
         ("dup_lines", "max_dup_lines", False))
BULLETS = ("-", "*", "•")
ELLIPSES = ("...", "…")


def scores(text: str) -> dict[str, float]:
    """Every filter score of one (normalised) document."""
    words = text.split()
    n_words = len(words)
    lines = [line for line in text.split("\n") if line.strip()]
    n_lines = max(1, len(lines))
    seen: set[str] = set()
    dups = 0
    for line in lines:
        if line in seen:
            dups += 1
        else:
            seen.add(line)
    return {
        "words": float(n_words),
        "mean_word_length": sum(map(len, words)) / n_words if n_words else 0.0,
        # Gopher caps '#' per word and ellipses per word at 0.1 each: the larger one decides
        "symbol_ratio": max(text.count("#"), text.count("...") + text.count("…"))
        / max(1, n_words),
        "bullet_lines": sum(line.lstrip().startswith(BULLETS) for line in lines) / n_lines,
        "ellipsis_lines": sum(line.rstrip().endswith(ELLIPSES) for line in lines) / n_lines,
        "dup_lines": dups / n_lines,
    }


def failed_rule(score: dict[str, float], settings: Any) -> str | None:
    """The name of the first setting `score` fails (its fate), or None when it passes."""
    for name, setting, lower in RULES:
        bound = getattr(settings, setting)
        if bound is None:
            continue
        if score[name] < bound if lower else score[name] > bound:
            return setting
    return None
