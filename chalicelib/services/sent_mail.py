"""The mailbox side of sending: the original of a reply, drafts, the Sent copy, flags.

All IMAP work goes through the mail API's pooled, budgeted connections
(:func:`chalicelib.services.mail_sessions.mail_connection`) and its adapter functions;
nothing here speaks IMAP itself.

- The referenced message (reply/forward) and a draft are read with ``BODY.PEEK[]`` after
  checking the id's UIDVALIDITY: an id from before a UIDVALIDITY change names another
  message now, so it is 404 ``MessageNotFound``, never a reply to the wrong mail.
- The Sent folder is the one the server flags ``\\Sent`` (RFC 6154), else the localized
  name the mail API recognizes ("Sent Items", "Gesendet", ...); its path is remembered per
  account for :data:`SENT_PATH_TTL_SECONDS` so a warm process does not LIST before every
  APPEND. None found: "Sent" is created, as desktop clients do.
- The copy is APPENDed with ``\\Seen`` (the user wrote it; it must not count as unread).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from chalicelib.errors import ApiError, MessageNotFoundError
from chalicelib.imap import mailboxes as imap_mailboxes
from chalicelib.imap import message_changes, messages
from chalicelib.imap.connection import ImapConnection
from chalicelib.message_ids import MessageRef, decode_message_id, encode_message_id
from chalicelib.mime.decode import extract_part, parse_message
from chalicelib.services.mail_sessions import mail_connection
from chalicelib.smtp.addresses import Mailbox
from chalicelib.smtp.compose import AttachmentSpec
from chalicelib.smtp.replies import OriginalMessage

SENT_ROLE = "\\Sent"
DEFAULT_SENT_PATH = "Sent"
SENT_PATH_TTL_SECONDS = 300.0
FLAG_FOR_ACTION = {"reply": "\\Answered", "reply-all": "\\Answered", "forward": "$Forwarded"}

_sent_paths: dict[str, tuple[str, float]] = {}
_sent_paths_lock = threading.Lock()


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a failure for a response's ``warnings``."""
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    return type(exc).__name__


def _select(conn: ImapConnection, message_id: str, *, readonly: bool) -> MessageRef:
    ref = decode_message_id(message_id)
    selected = messages.select_mailbox(conn, ref.path, readonly=readonly)
    if selected.uid_validity != ref.uid_validity:
        raise MessageNotFoundError("the message no longer exists (its mailbox was rebuilt)",
                                   details={"id": message_id})
    return ref


def _fetch_raw(conn: ImapConnection, message_id: str) -> bytes:
    ref = _select(conn, message_id, readonly=True)
    raw = messages.fetch_source(conn, ref.uid)
    if raw is None:
        raise MessageNotFoundError("the message does not exist", details={"id": message_id})
    return raw


def _mailboxes(found: list[dict[str, str]]) -> tuple[Mailbox, ...]:
    return tuple(Mailbox(item.get("name") or "", item["address"]) for item in found if item.get("address"))


def fetch_original(account_id: str, message_id: str, *, with_attachments: bool) -> OriginalMessage:
    """The message a reply or forward refers to; attachments are extracted only when asked."""
    with mail_connection(account_id) as conn:
        raw = _fetch_raw(conn, message_id)
    parsed = parse_message(raw)
    attachments = []
    if with_attachments:
        for info in parsed.attachments:
            part = extract_part(raw, info.part)
            if part is not None:
                attachments.append(AttachmentSpec(content=part.content, content_type=part.content_type,
                                                  filename=part.filename, content_id=info.content_id,
                                                  field="reference.forwardAttachments"))
    return OriginalMessage(
        message_id=parsed.message_id, references=tuple(parsed.references),
        in_reply_to=(parsed.in_reply_to,) if parsed.in_reply_to else (), subject=parsed.subject or "",
        date=(parsed.headers.get("date") or [""])[0], sender=_mailboxes([parsed.from_] if parsed.from_ else []),
        reply_to=_mailboxes(parsed.reply_to), to=_mailboxes(parsed.to), cc=_mailboxes(parsed.cc),
        text=parsed.text_plain, html=parsed.text_html, attachments=tuple(attachments))


def fetch_draft(account_id: str, message_id: str) -> bytes:
    with mail_connection(account_id) as conn:
        return _fetch_raw(conn, message_id)


def _cached_sent_path(account_id: str) -> str | None:
    with _sent_paths_lock:
        found = _sent_paths.get(account_id)
    if found is None or found[1] < time.monotonic():
        return None
    return found[0]


def _remember_sent_path(account_id: str, path: str | None) -> None:
    with _sent_paths_lock:
        if path is None:
            _sent_paths.pop(account_id, None)
        else:
            _sent_paths[account_id] = (path, time.monotonic() + SENT_PATH_TTL_SECONDS)


def _sent_path(conn: ImapConnection, account_id: str) -> str:
    path = _cached_sent_path(account_id) or imap_mailboxes.find_mailbox_by_role(conn, SENT_ROLE)
    if path is None:
        imap_mailboxes.create_mailbox(conn, DEFAULT_SENT_PATH)
        path = DEFAULT_SENT_PATH
    _remember_sent_path(account_id, path)
    return path


def _sent_result(path: str, uid_validity: int | None, uid: int | None) -> dict[str, Any]:
    sent: dict[str, Any] = {"path": path}
    if uid_validity and uid:
        sent["id"] = encode_message_id(MessageRef(path, uid_validity, uid))
        sent["uid"] = uid
    return sent


def store_sent_copy(account_id: str, raw: bytes, message_id: str | None = None, *, look_first: bool = False,
                    budget_seconds: float | None = None) -> dict[str, Any]:
    """APPEND ``raw`` to the Sent folder with ``\\Seen``; returns ``{path, id?, uid?}``.

    ``look_first``: an earlier APPEND of this message may have landed without its answer
    reaching us (a timeout, a worker that died); a copy with this Message-ID already in the
    Sent folder is then returned instead of appending a second one.
    """
    with mail_connection(account_id, budget_seconds=budget_seconds) as conn:
        path = _sent_path(conn, account_id)
        if look_first and message_id:
            uid_validity, uid = message_changes.find_by_message_id(conn, path, message_id)
            if uid is not None:
                return _sent_result(path, uid_validity, uid)
        try:
            uid_validity, uid = message_changes.append(conn, path, raw, flags=("\\Seen",), message_id=message_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            # The remembered folder was renamed or deleted meanwhile: look it up again, once.
            _remember_sent_path(account_id, None)
            path = _sent_path(conn, account_id)
            uid_validity, uid = message_changes.append(conn, path, raw, flags=("\\Seen",), message_id=message_id)
    return _sent_result(path, uid_validity, uid)


def flag_original(account_id: str, message_id: str, action: str, *, budget_seconds: float | None = None) -> None:
    """``\\Answered`` after a reply, ``$Forwarded`` after a forward, on the referenced message.

    Adding a flag twice changes nothing, so a retried step is harmless."""
    with mail_connection(account_id, budget_seconds=budget_seconds) as conn:
        ref = _select(conn, message_id, readonly=False)
        message_changes.store_flags(conn, [ref.uid], add=(FLAG_FOR_ACTION[action],))


def delete_draft(account_id: str, message_id: str, *, budget_seconds: float | None = None) -> None:
    """Remove exactly the draft that was sent (UID EXPUNGE when the server has UIDPLUS).

    A draft already gone (an earlier try removed it) is what was wanted: UID STORE and UID
    EXPUNGE of a UID that no longer exists are no-ops (RFC 3501 6.4.8); a rebuilt or
    deleted Drafts folder raises a 404 the caller treats as done."""
    with mail_connection(account_id, budget_seconds=budget_seconds) as conn:
        ref = _select(conn, message_id, readonly=False)
        message_changes.expunge(conn, [ref.uid])
