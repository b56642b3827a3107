"""The API's search object -> IMAP SEARCH keys (pure; no I/O).

Keys are ANDed, as IMAP does. Field by field::

    seq "1:10"          1:10                    uid "5:*"      UID 5:*
    from/to/cc/bcc x    FROM x / TO x / ...     subject x      SUBJECT x
    body x / text x     BODY x / TEXT x         header {n: v}  HEADER n v (v "" = header present)
    since/before d      SINCE d / BEFORE d      sentSince/sentBefore d   SENTSINCE/SENTBEFORE (Date header)
    larger/smaller n    LARGER n / SMALLER n    keyword k      KEYWORD k
    seen/flagged/answered/draft/deleted true|false      SEEN / UNSEEN, FLAGGED / UNFLAGGED, ...
    unseen true|false   UNSEEN / SEEN
    emailId/threadId    EMAILID / THREADID (OBJECTID, RFC 8474) or X-GM-MSGID / X-GM-THRID (Gmail)
    gmailRaw q          X-GM-RAW q (Gmail only)

Strings are always quoted strings or literals (:mod:`chalicelib.imap.strings`, never bare:
``{5}`` would announce a literal); 8-bit text goes as a literal and then the command carries
``CHARSET UTF-8`` (RFC 3501 requires servers to accept it; Dovecot, Gmail and Exchange all
do). :func:`build_search` returns the tokens and whether UTF-8 is needed. Text with a NUL
is a 400 ``ValidationError`` naming the field.

Failure modes: a criterion the server cannot evaluate (emailId without OBJECTID or Gmail,
gmailRaw elsewhere) is a 400 ``UnsupportedSearch`` naming the field, rather than a BAD
from the server.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from chalicelib.errors import ApiError, ValidationError
from chalicelib.imap.capabilities import Capabilities
from chalicelib.imap.strings import string_argument
from chalicelib.imap.wire import format_criteria_date

_SEQ_RANGE = r"(?:[1-9][0-9]*|\*)(?::(?:[1-9][0-9]*|\*))?"
SEQUENCE_SET = re.compile(rf"^{_SEQ_RANGE}(?:,{_SEQ_RANGE})*$")
# RFC 3501 atom without the characters that would end it or make it a system flag.
KEYWORD = re.compile(r"^[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]{1,128}$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")  # RFC 8474 objectid
TEXT_KEYS = {"from": b"FROM", "to": b"TO", "cc": b"CC", "bcc": b"BCC", "subject": b"SUBJECT", "body": b"BODY",
             "text": b"TEXT"}
DATE_KEYS = {"since": b"SINCE", "before": b"BEFORE", "sentSince": b"SENTSINCE", "sentBefore": b"SENTBEFORE"}
FLAG_KEYS = {"seen": (b"SEEN", b"UNSEEN"), "unseen": (b"UNSEEN", b"SEEN"), "flagged": (b"FLAGGED", b"UNFLAGGED"),
             "answered": (b"ANSWERED", b"UNANSWERED"), "draft": (b"DRAFT", b"UNDRAFT"),
             "deleted": (b"DELETED", b"UNDELETED")}


def _date(value: date | datetime | str) -> bytes:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return format_criteria_date(value)


def _unsupported(field: str, why: str) -> ApiError:
    return ApiError(f"this mail server cannot search by {field}: {why}", code="UnsupportedSearch", status=422,
                    details={f"search.{field}": why})


def build_search(search: Mapping[str, Any], capabilities: Capabilities | Collection[str]) -> tuple[list[bytes], bool]:
    """(criteria tokens, whether CHARSET UTF-8 is needed) for a validated search object."""
    caps = capabilities if isinstance(capabilities, Capabilities) else Capabilities.parse(capabilities)
    tokens: list[bytes] = []
    utf8 = False

    def add_string(value: str, field: str) -> None:
        nonlocal utf8
        token, needs_utf8 = string_argument(value, f"search.{field}")
        tokens.append(token)
        utf8 = utf8 or needs_utf8

    for field, value in search.items():
        if value is None:
            continue
        if field in ("seq", "uid"):
            if not SEQUENCE_SET.match(str(value)):
                raise ValidationError("not an IMAP sequence set (e.g. 1:10,15,20:*)",
                                      details={f"search.{field}": "expected a sequence set such as 1:10,15,20:*"})
            tokens.extend([b"UID", str(value).encode()] if field == "uid" else [str(value).encode()])
        elif field in TEXT_KEYS:
            tokens.append(TEXT_KEYS[field])
            add_string(value, field)
        elif field == "header":
            for name, header_value in value.items():
                tokens.append(b"HEADER")
                add_string(name, f"header.{name}")
                add_string(header_value or "", f"header.{name}")
        elif field in DATE_KEYS:
            tokens.extend([DATE_KEYS[field], _date(value)])
        elif field in ("larger", "smaller"):
            tokens.extend([field.upper().encode(), str(int(value)).encode()])
        elif field in FLAG_KEYS:
            tokens.append(FLAG_KEYS[field][0 if value else 1])
        elif field == "keyword":
            if not KEYWORD.match(value):
                raise ValidationError("not a valid keyword",
                                      details={"search.keyword": "a keyword is an IMAP atom such as $Label1"})
            tokens.extend([b"KEYWORD", value.encode("ascii")])
        elif field in ("emailId", "threadId"):
            if caps.objectid:
                if not OBJECT_ID.match(value):
                    raise ValidationError("not a valid object id",
                                          details={f"search.{field}": "1-255 of A-Z a-z 0-9 _ -"})
                tokens.extend([b"EMAILID" if field == "emailId" else b"THREADID", value.encode("ascii")])
            elif caps.gmail:
                if not str(value).isdigit():
                    raise ValidationError("Gmail ids are decimal numbers",
                                          details={f"search.{field}": "expected digits"})
                tokens.extend([b"X-GM-MSGID" if field == "emailId" else b"X-GM-THRID", str(value).encode()])
            else:
                raise _unsupported(field, "the server offers neither OBJECTID nor Gmail's extensions")
        elif field == "gmailRaw":
            if not caps.gmail:
                raise _unsupported(field, "only Gmail supports X-GM-RAW")
            tokens.append(b"X-GM-RAW")
            add_string(value, field)
        else:
            raise ValidationError(f"unknown search field {field!r}", details={f"search.{field}": "unknown field"})
    return (tokens or [b"ALL"]), utf8
