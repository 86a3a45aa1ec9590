"""Text from run dirs, shown to a person: made inert for terminals and spreadsheets.

Config values, error messages and labels come from files anyone could have written. Printed
raw, an ANSI escape sequence in one repaints or hides the terminal's text (and some terminals
answer certain sequences by typing into the shell), and a Unicode bidi override reorders
what is shown. In a CSV file, a cell starting with `=` (or `+`, `-`, `@`) is a formula to a
spreadsheet (OWASP's "CSV injection"). These helpers are applied where such text leaves
rlrun: the error line of every command, the report's tables, summary.md and summary.csv.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidi embedding/override/isolate
# characters (the "Trojan Source" set).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    c = ord(match.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_safe(text: str) -> str:
    """`text` with control and bidi characters written as `\\x1b`-style escapes (newlines
    and tabs kept): what a terminal shows is what the file holds."""
    return _UNSAFE.sub(_escape, text)


def one_line(text: str) -> str:
    """`terminal_safe`, with newlines and tabs as escapes too: a message that stays one line."""
    return terminal_safe(text).replace("\n", "\\n").replace("\t", "\\t")


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell that no spreadsheet evaluates: text starting with a formula character
    gets a leading `'` (numbers such as `-1.5` are left as they are)."""
    if not cell.startswith(_FORMULA):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell
