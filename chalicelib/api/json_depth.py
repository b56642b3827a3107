"""A bound on the nesting depth of request bodies, checked before the JSON parser runs.

CPython's ``json`` recurses once per ``[``/``{``: a body of 100,000 brackets (a few hundred
KB, far under the size limit) ends in ``RecursionError``, and pydantic and our own code
would recurse over whatever the parser let through. No request of this API nests deeper
than a handful of levels, so bodies deeper than :data:`MAX_JSON_DEPTH` are refused before
parsing, by a scan that does not recurse and stops at the first bracket over the limit.

The scan only counts: it skips string literals (a ``[`` inside ``"..."`` is text) and
leaves every other judgement to the parser, so a malformed body it lets through still
fails there with the parser's own message.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64

# A string literal (escapes included; an unterminated one runs to the end) or one bracket;
# everything else is skipped. The string part is the "unrolled loop" form, in which every
# byte can be matched one way only: a nested quantifier such as (?:[^"\\]+|\\.)* backtracks
# exponentially on an unterminated string, and requiring the closing quote would rescan the
# rest of the body from every quote: both would turn this guard into the denial of service.
_STRINGS_AND_BRACKETS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPENING = frozenset(b"[{")


class JsonTooDeepError(ValueError):
    """The body nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`."""


def check_json_depth(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeepError` as soon as ``raw`` opens more than ``limit`` levels.

    Linear in the body's size (about 0.3 s per MB of brackets, the worst case); a body with
    no more opening brackets than the limit, almost every request, is passed by two counts.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    depth = 0
    for match in _STRINGS_AND_BRACKETS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue  # a string literal
        if token[0] in _OPENING:
            depth += 1
            if depth > limit:
                raise JsonTooDeepError(f"JSON nests deeper than {limit} levels")
        else:
            depth = max(depth - 1, 0)
