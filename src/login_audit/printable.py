"""Making vendor text safe to show: no control character reaches a terminal or a log line.

Account emails, role names and error messages come from the vendor, and an attacker who
can name an account can put escape sequences in them: ``ESC]0;...BEL`` retitles a
terminal, ``CR`` overwrites the start of a line, a bidi override reverses what follows.
Each such character is shown as U+FFFD instead of being dropped, so two different
values never look the same on screen.
"""

from __future__ import annotations

import re

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"

# C0 and C1 controls and DEL, the line and paragraph separators, and the bidirectional
# formatting characters (Trojan Source).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(value: str, *, keep_newlines: bool = False) -> str:
    """``value`` with every control character replaced by U+FFFD (see the module).

    ``keep_newlines`` keeps ``\\n`` for texts of several lines that we compose ourselves.
    """
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE
    return pattern.sub(REPLACEMENT, value)
