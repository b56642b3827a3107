"""Changing mail: flags and labels, move, delete, upload (APPEND), and the same by search.

Every change SELECTs the mailbox read-write; a mailbox the server opens read-only (ACLs,
shared folders) is refused with 403 ``MailboxReadOnly`` before anything is sent.

Delete semantics (one message or by search):

    force=true, or already in Trash, or no Trash at all  ->  expunge exactly these UIDs
    otherwise                                            ->  move to the \\Trash mailbox

Trash is the mailbox with the ``\\Trash`` special use (server flag first, then a
well-known localized name, see :mod:`chalicelib.imap.special_use`).
"""

from __future__ import annotations

import base64
import binascii

from chalicelib.errors import ApiError, ConflictError, MailPermissionError, MessageNotFoundError, ValidationError
from chalicelib.imap import message_changes
from chalicelib.imap import messages as imap_messages
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.mailboxes import find_mailbox_by_role
from chalicelib.imap.messages import SelectedMailbox
from chalicelib.message_ids import MessageRef, decode_message_id, encode_message_id
from chalicelib.mime.headers import parse_message_id
from chalicelib.mime.htmltext import html_to_text
from chalicelib.mime.tree import parse_headers_only
from chalicelib.schemas.messages import (
    BulkResult,
    ChangeResult,
    FlagChange,
    LabelChange,
    MessageDeleted,
    MessageMoved,
    MessageUpdate,
    MessageUpdated,
    MessageUpload,
    MessageUploaded,
)
from chalicelib.services import accounts
from chalicelib.services.mail_sessions import mail_connection
from chalicelib.services.messages import find_uids, open_message
from chalicelib.services.sending import MessageParts, apply_reference
from chalicelib.smtp.addresses import Mailbox
from chalicelib.smtp.compose import AttachmentSpec, ComposeError, OutgoingMessage, compose

TRASH = "\\Trash"


def _writable(selected: SelectedMailbox) -> SelectedMailbox:
    if selected.read_only:
        raise MailPermissionError("the mail server opens this mailbox read-only", details={"path": selected.path})
    return selected


def _open_for_change(conn: ImapConnection, ref: MessageRef) -> SelectedMailbox:
    selected = _writable(open_message(conn, ref, readonly=False))
    if not imap_messages.fetch_flags(conn, [ref.uid]):
        raise MessageNotFoundError("the message no longer exists in its mailbox",
                                   details={"path": ref.path, "uid": ref.uid})
    return selected


def _change(before: tuple[str, ...], after: tuple[str, ...]) -> ChangeResult:
    return ChangeResult(added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)),
                        current=sorted(after))


def _flag_args(change: FlagChange | LabelChange) -> dict:
    return {"add": tuple(change.add or ()), "remove": tuple(change.delete or ()),
            "replace": tuple(change.set) if change.set is not None else None}


def update_message(account_id: str, message_id: str, update: MessageUpdate) -> MessageUpdated:
    ref = decode_message_id(message_id)
    result = MessageUpdated()
    with mail_connection(account_id) as conn:
        _open_for_change(conn, ref)
        if update.flags is not None:
            before = imap_messages.fetch_flags(conn, [ref.uid]).get(ref.uid, ())
            after = message_changes.store_flags(conn, [ref.uid], **_flag_args(update.flags)).get(ref.uid, before)
            result.flags = _change(before, after)
        if update.labels is not None:
            if not conn.capabilities.gmail:
                raise ApiError("labels exist only on Gmail", code="UnsupportedByServer", status=422,
                               details={"labels": "this server has no X-GM-EXT-1"})
            answer = conn.run("UID FETCH", lambda: conn.session.labels([ref.uid]))
            before = tuple(answer.get(ref.uid, ()))
            after = message_changes.store_labels(conn, [ref.uid], **_flag_args(update.labels)).get(ref.uid, before)
            result.labels = _change(before, after)
    return result


def _moved_out(ref_path: str, outcome: message_changes.MoveResult, uid: int) -> MessageMoved:
    new_uid = outcome.new_uids.get(uid)
    if new_uid is None or outcome.uid_validity is None:
        return MessageMoved(path=outcome.destination)
    return MessageMoved(path=outcome.destination, uid=new_uid,
                        id=encode_message_id(MessageRef(outcome.destination, outcome.uid_validity, new_uid)))


def move_message(account_id: str, message_id: str, destination: str) -> MessageMoved:
    ref = decode_message_id(message_id)
    if destination == ref.path:
        raise ConflictError("the message is already in that mailbox", code="SameMailbox",
                            details={"path": "same as the source"})
    with mail_connection(account_id) as conn:
        _open_for_change(conn, ref)
        outcome = message_changes.move(conn, [ref.uid], destination)
    return _moved_out(ref.path, outcome, ref.uid)


def delete_message(account_id: str, message_id: str, *, force: bool) -> MessageDeleted:
    ref = decode_message_id(message_id)
    with mail_connection(account_id) as conn:
        _open_for_change(conn, ref)
        trash = None if force else find_mailbox_by_role(conn, TRASH)
        if trash is None or trash == ref.path:
            return MessageDeleted(deleted=message_changes.expunge(conn, [ref.uid]))
        outcome = message_changes.move(conn, [ref.uid], trash)
    return MessageDeleted(deleted=False, moved=_moved_out(ref.path, outcome, ref.uid))


# -- by search -------------------------------------------------------------------------------


def _matching(conn: ImapConnection, path: str, criteria: dict) -> list[int]:
    _writable(imap_messages.select_mailbox(conn, path, readonly=False))
    return find_uids(conn, criteria)


def bulk_update_flags(account_id: str, path: str, criteria: dict, flags: FlagChange) -> BulkResult:
    with mail_connection(account_id) as conn:
        uids = _matching(conn, path, criteria)
        message_changes.store_flags_silently(conn, uids, **_flag_args(flags))
    return BulkResult(path=path, matched=len(uids), updated=len(uids))


def bulk_move(account_id: str, path: str, criteria: dict, destination: str) -> BulkResult:
    if destination == path:
        raise ConflictError("source and destination are the same mailbox", code="SameMailbox",
                            details={"path": "same as the source"})
    with mail_connection(account_id) as conn:
        uids = _matching(conn, path, criteria)
        if uids:
            message_changes.move(conn, uids, destination)
    return BulkResult(path=path, destination=destination, matched=len(uids), moved=len(uids))


def bulk_delete(account_id: str, path: str, criteria: dict, *, force: bool) -> BulkResult:
    with mail_connection(account_id) as conn:
        uids = _matching(conn, path, criteria)
        trash = None if force or not uids else find_mailbox_by_role(conn, TRASH)
        if trash is None or trash == path:
            expunged = message_changes.expunge(conn, uids)
            return BulkResult(path=path, matched=len(uids), deleted=len(uids) if expunged else 0)
        message_changes.move(conn, uids, trash)
    return BulkResult(path=path, destination=trash, matched=len(uids), moved=len(uids), deleted=0)


# -- upload ----------------------------------------------------------------------------------


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("not valid base64", details={field: "expected base64"}) from None


def _mailbox(address) -> Mailbox:
    return Mailbox(name=address.name or "", address=address.address)


def build_upload(account_id: str, upload: MessageUpload) -> bytes:
    """The RFC 822 bytes to APPEND: ``raw`` as given, or composed from the fields (a reply or
    forward built from ``reference`` as :func:`sending.apply_reference` builds it for a send)."""
    if upload.raw is not None:
        raw = _b64(upload.raw, "raw")
        if not raw.strip():
            raise ValidationError("raw is empty", details={"raw": "expected a message"})
        return raw
    attachments = tuple(
        AttachmentSpec(content=_b64(item.content, f"attachments.{index}.content"), content_type=item.contentType,
                       filename=item.filename, content_id=item.cid.strip("<>") if item.cid else None,
                       field=f"attachments.{index}")
        for index, item in enumerate(upload.attachments))
    sender = _mailbox(upload.from_)
    parts = MessageParts(subject=upload.subject, to=tuple(map(_mailbox, upload.to)),
                         cc=tuple(map(_mailbox, upload.cc)), text=upload.text, html=upload.html,
                         attachments=attachments)
    if upload.reference is not None:
        own = {accounts.get_account(account_id).email or "", sender.address}
        parts = apply_reference(account_id, upload.reference, parts, own)
    message = OutgoingMessage(
        sender=sender, to=parts.to, cc=parts.cc, bcc=tuple(map(_mailbox, upload.bcc)), subject=parts.subject or "",
        text=parts.text, html=parts.html, attachments=parts.attachments, headers=tuple(upload.headers.items()),
        message_id=upload.messageId, in_reply_to=parts.in_reply_to, references=parts.references)
    try:
        composed = compose(message, text_from_html=html_to_text)
    except ComposeError as exc:
        raise ValidationError(str(exc), code=exc.code, details={exc.field: str(exc)}) from None
    except ValueError as exc:
        raise ValidationError(str(exc), details={"body": str(exc)}) from None
    return composed.sent_copy()


def upload_message(account_id: str, upload: MessageUpload) -> MessageUploaded:
    raw = build_upload(account_id, upload)
    message_id = parse_message_id(parse_headers_only(raw).get("message-id"))
    with mail_connection(account_id) as conn:
        uid_validity, uid = message_changes.append(conn, upload.path, raw, flags=tuple(upload.flags),
                                                   internal_date=upload.internalDate, message_id=message_id)
    message = (encode_message_id(MessageRef(upload.path, uid_validity, uid))
               if uid_validity is not None and uid is not None else None)
    return MessageUploaded(id=message, uid=uid, path=upload.path, messageId=message_id)
