"""Reading mail: list and search pages, one message, its text, source and attachments.

Round trips on a warm connection (EXAMINE is always sent: it returns UIDVALIDITY and the
message count that paging and id checks need, and re-reads the mailbox state):

    list page          EXAMINE, FETCH <page by sequence number>      (+ 1 UID SEARCH COUNT with a cursor)
    search page        EXAMINE, UID SEARCH, UID FETCH <page>
    message            EXAMINE, UID FETCH (header + structure), UID FETCH <text parts, partial>
                                                         (+ 1 UID FETCH of the images embedAttachedImages inlines)
    text               EXAMINE, UID FETCH (structure + parts)
    attachment         EXAMINE, UID FETCH (structure + BODY.PEEK[part]<0.bound>)   (+ 1 per window beyond)
    source             EXAMINE, UID FETCH BODY.PEEK[]<0.bound>                     (+ 1 per window beyond)

Paging is newest first (highest UID first). ``page`` numbers shift when mail arrives;
``nextPageCursor`` does not: it records the lowest UID shown, and the next page is the
``pageSize`` messages below it.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import math
from collections.abc import Iterator

from chalicelib.errors import (
    AttachmentNotFoundError,
    InvalidIdError,
    MailboxNotFoundError,
    MessageNotFoundError,
)
from chalicelib.imap import messages as imap_messages
from chalicelib.imap.connection import ImapConnection
from chalicelib.imap.message_changes import store_flags
from chalicelib.imap.messages import MessageSummary, SelectedMailbox
from chalicelib.imap.search import build_search
from chalicelib.message_ids import MessageRef, decode_attachment_id, decode_message_id, decode_text_id
from chalicelib.mime.charsets import charset_codecs
from chalicelib.mime.decode import decode_part_payload, join_text_parts
from chalicelib.mime.model import MessageStructure, PartNode, TextPartRef
from chalicelib.mime.structure import bodystructure_tree, parse_bodystructure
from chalicelib.mime.transfer import StreamDecoder, decode_transfer_encoding
from chalicelib.schemas.messages import MessageDetail, MessageList, TextContent, TextOnly
from chalicelib.services import downloads
from chalicelib.services.cursors import (
    MessageCursor,
    decode_message_cursor,
    encode_message_cursor,
    message_cursor_scope,
)
from chalicelib.services.downloads import Download
from chalicelib.services.mail_sessions import mail_connection
from chalicelib.services.message_rendering import HtmlOptions, render_html
from chalicelib.services.message_views import body_charset, entry_fields, listing_entry, text_refs
from chalicelib.settings import get_settings

# -- paging ----------------------------------------------------------------------------------


def _page_result(conn: ImapConnection, selected: SelectedMailbox, summaries: list[MessageSummary], *,
                 total: int, page: int, page_size: int, more: bool, scope: bytes) -> MessageList:
    next_cursor = None
    if more and summaries:
        lowest_uid = min(s.uid for s in summaries)
        next_cursor = encode_message_cursor(MessageCursor(selected.uid_validity, lowest_uid, page + 1, scope))
    return MessageList(total=total, page=page, pages=max(1, math.ceil(total / page_size)),
                       nextPageCursor=next_cursor,
                       messages=[listing_entry(s, selected.path, selected.uid_validity, server_key=conn.server_key)
                                 for s in summaries])


def _cursor(value: str, scope: bytes, selected: SelectedMailbox) -> MessageCursor:
    cursor = decode_message_cursor(value, scope)
    if cursor.uid_validity != selected.uid_validity:
        raise InvalidIdError("the mailbox was reset (UIDVALIDITY changed); start again from page 0",
                             code="CursorExpired", status=409, details={"path": selected.path})
    return cursor


def list_messages(account_id: str, path: str, *, page: int, page_size: int, cursor: str | None) -> MessageList:
    scope = message_cursor_scope(path)
    with mail_connection(account_id) as conn:
        selected = imap_messages.select_mailbox(conn, path)
        if cursor:
            position = _cursor(cursor, scope, selected)
            page = position.page
            newest = imap_messages.count_below_uid(conn, position.before_uid)
        else:
            newest = selected.exists - page * page_size
        oldest = max(1, newest - page_size + 1)
        summaries = imap_messages.fetch_summaries_by_sequence(conn, oldest, newest)
        return _page_result(conn, selected, summaries, total=selected.exists, page=page, page_size=page_size,
                            more=oldest > 1, scope=scope)


def search_messages(account_id: str, path: str, criteria: dict, *, page: int, page_size: int,
                    cursor: str | None) -> MessageList:
    scope = message_cursor_scope(path, json.dumps(criteria, sort_keys=True, default=str))
    with mail_connection(account_id) as conn:
        selected = imap_messages.select_mailbox(conn, path)
        matches = find_uids(conn, criteria)
        newest_first = sorted(matches, reverse=True)
        if cursor:
            position = _cursor(cursor, scope, selected)
            page = position.page
            remaining = [uid for uid in newest_first if uid < position.before_uid]
        else:
            remaining = newest_first[page * page_size:]
        page_uids = remaining[:page_size]
        summaries = imap_messages.fetch_summaries(conn, page_uids)
        return _page_result(conn, selected, summaries, total=len(matches), page=page, page_size=page_size,
                            more=len(remaining) > page_size, scope=scope)


def find_uids(conn: ImapConnection, criteria: dict) -> list[int]:
    """UIDs in the selected mailbox matching the API's search object."""
    tokens, utf8 = build_search(criteria, conn.capabilities)
    return imap_messages.search_uids(conn, tokens, charset="UTF-8" if utf8 else None)


# -- one message -----------------------------------------------------------------------------


def open_message(conn: ImapConnection, ref: MessageRef, *, readonly: bool = True) -> SelectedMailbox:
    """Select the message's mailbox; 404 MessageNotFound if it or its UIDVALIDITY is gone."""
    try:
        selected = imap_messages.select_mailbox(conn, ref.path, readonly=readonly)
    except MailboxNotFoundError:
        raise MessageNotFoundError("the message's mailbox no longer exists", details={"path": ref.path}) from None
    if selected.uid_validity != ref.uid_validity:
        raise MessageNotFoundError("the mailbox was reset (UIDVALIDITY changed); the message id is stale",
                                   details={"path": ref.path})
    return selected


def _gone(ref: MessageRef) -> MessageNotFoundError:
    return MessageNotFoundError("the message no longer exists in its mailbox",
                                details={"path": ref.path, "uid": ref.uid})


def _partial_limit(ref: TextPartRef, max_bytes: int) -> int | None:
    return imap_messages.partial_fetch_limit(ref.encoded_size, max_bytes)


def complete_prefix(data: bytes, charset: str | None) -> bytes:
    """``data`` without a multibyte character cut in half at its end (a partial fetch).

    A truncated trailing sequence would make the declared charset fail and the decoder
    fall back to guessing the whole text; the charset's incremental decoder says which
    tail bytes it is still waiting for. Undeclared text is tried as UTF-8.
    """
    codec = (charset_codecs(charset) or ("utf-8",))[0]
    try:
        decoder = codecs.getincrementaldecoder(codec)()
        decoder.decode(data, final=False)
        pending = decoder.getstate()[0]
    except (UnicodeDecodeError, LookupError, TypeError, ValueError):
        return data
    return data[:len(data) - len(pending)] if pending else data


def decode_texts(refs: dict[str, list[TextPartRef]], payloads: dict[str, bytes], structure: MessageStructure,
                 max_bytes: int) -> tuple[dict[str, str | None], bool]:
    """Decoded and joined text per kind, and whether anything was cut."""
    hint = body_charset(structure)
    texts: dict[str, str | None] = {}
    has_more = False
    for kind, parts in refs.items():
        decoded = []
        for part in parts:
            payload = payloads.get(part.part, b"")
            if _partial_limit(part, max_bytes) is None:
                decoded.append(decode_part_payload(payload, part.encoding, part.charset,
                                                   content_type=part.content_type, hint=hint))
                continue
            has_more = True
            data = complete_prefix(decode_transfer_encoding(payload, part.encoding), part.charset)
            decoded.append(decode_part_payload(data, "binary", part.charset, content_type=part.content_type,
                                               hint=hint))
        texts[kind], cut = join_text_parts(decoded, max_bytes)
        has_more = has_more or cut
    return texts, has_more


def _fetch_texts(conn: ImapConnection, uid: int, refs: dict[str, list[TextPartRef]],
                 max_bytes: int) -> dict[str, bytes]:
    wanted = {part.part: _partial_limit(part, max_bytes) for parts in refs.values() for part in parts}
    if not wanted:
        return {}
    fetched = imap_messages.fetch_sections(conn, uid, list(wanted.items()))
    return fetched[0] if fetched is not None else {}


def get_message(account_id: str, message_id: str, *, text_type: str, max_bytes: int,
                mark_as_seen: bool, html_options: HtmlOptions | None = None) -> MessageDetail:
    ref = decode_message_id(message_id)
    html_options = html_options or HtmlOptions()
    text_type = html_options.text_type(text_type)
    with mail_connection(account_id) as conn:
        open_message(conn, ref, readonly=not mark_as_seen)
        summaries = imap_messages.fetch_summaries(conn, [ref.uid], full_headers=True)
        if not summaries:
            raise _gone(ref)
        summary = summaries[0]
        structure = parse_bodystructure(summary.bodystructure)
        refs = text_refs(structure, text_type)
        texts, has_more = decode_texts(refs, _fetch_texts(conn, ref.uid, refs, max_bytes), structure, max_bytes)
        rendered = render_html(conn, ref.uid, structure, texts, html_options,
                               budget=get_settings().embed_images_max_bytes)
        if mark_as_seen and "\\seen" not in {flag.lower() for flag in summary.flags}:
            flags = store_flags(conn, [ref.uid], add=("\\Seen",)).get(ref.uid, (*summary.flags, "\\Seen"))
            summary = dataclasses.replace(summary, flags=flags)
    fields, parsed = entry_fields(summary, ref.path, ref.uid_validity, all_headers=True)
    summary_text = fields.pop("text")
    return MessageDetail(**fields, headers=parsed.headers, references=parsed.references,
                         text=TextContent(id=summary_text.id, encodedSize=summary_text.encodedSize,
                                          plain=texts.get("plain"), html=rendered.html, hasMore=has_more,
                                          webSafe=rendered.web_safe or None),
                         warnings=list(rendered.warnings) or None)


def get_text(account_id: str, text_id: str, *, text_type: str, max_bytes: int, web_safe: bool = False) -> TextOnly:
    """The text parts of ``text_id``; with ``web_safe``, as EmailEngine's text route answers it:
    one sanitized ``html`` (from the plain text when there is no HTML) and no ``plain``."""
    ref = decode_text_id(text_id)
    html_options = HtmlOptions(web_safe=web_safe)
    text_type = html_options.text_type(text_type)
    with mail_connection(account_id) as conn:
        open_message(conn, ref.message)
        answer = conn.run("UID FETCH", lambda: conn.session.fetch([ref.message.uid], ["BODYSTRUCTURE"]))
        if ref.message.uid not in answer:
            raise _gone(ref.message)
        structure = parse_bodystructure(answer[ref.message.uid].get(b"BODYSTRUCTURE"))
        refs = {kind: [part for part in parts if part.part in ref.sections]
                for kind, parts in text_refs(structure, text_type).items()}
        texts, has_more = decode_texts(refs, _fetch_texts(conn, ref.message.uid, refs, max_bytes), structure,
                                       max_bytes)
        rendered = render_html(conn, ref.message.uid, structure, texts, html_options, budget=0)
    if web_safe:
        return TextOnly(html=rendered.html, hasMore=has_more, webSafe=True)
    return TextOnly(plain=texts.get("plain"), html=texts.get("html"), hasMore=has_more)


def _stream_rest(conn: ImapConnection, ref: MessageRef, section: str, first: list[bytes],
                 decoder: StreamDecoder | None = None) -> Iterator[bytes]:
    """The first window and the ones after it, decoded when ``decoder`` is given.

    Memory is the point: ``first`` is a one-element list this generator empties, so the
    caller does not keep the first window alive, and no window is referenced while the
    next one is fetched.
    """
    def emit(window: bytes) -> Iterator[bytes]:
        if decoder is None:
            yield window
        else:
            yield from decoder.feed(window)

    windows = imap_messages.iter_windows(conn, ref.uid, section, start=len(first[0]),
                                         length=get_settings().download_chunk_bytes)
    try:
        yield from emit(first.pop())  # (itertools.chain would keep it referenced to the end)
        for window in windows:
            yield from emit(window)
            del window
    except imap_messages.MessageGoneError:
        raise _gone(ref) from None
    if decoder:
        yield decoder.finish()


def get_source(account_id: str, message_id: str) -> Download:
    """The raw message: read whole up to the inline bound, otherwise streamed into S3.

    The first FETCH asks for at most the bound's worth of octets (``<0.bound>``), so memory
    is bounded whatever size the server announces (RFC822.SIZE is an estimate on some
    servers); a full window means there may be more, which continues in partial windows.
    """
    ref = decode_message_id(message_id)
    filename = f"{ref.uid}.eml"
    window = get_settings().max_response_bytes
    with mail_connection(account_id) as conn:
        open_message(conn, ref)
        fetched = imap_messages.fetch_window(conn, ref.uid, "", 0, window)
        if fetched is None:
            raise _gone(ref)
        head = [fetched[0]]
        del fetched
        if len(head[0]) == window:
            return downloads.upload_stream(account_id, _stream_rest(conn, ref, "", head), "message/rfc822",
                                           filename)
    return downloads.prepare(account_id, head[0], "message/rfc822", filename)


def _find_part(node: PartNode, section: str) -> PartNode | None:
    if node.section == section and not node.is_multipart:
        return node
    for child in node.children:
        found = _find_part(child, section)
        if found is not None:
            return found
    return None


def get_attachment(account_id: str, attachment_id: str) -> Download:
    """One part, transfer-decoded: read whole up to the inline bound, otherwise streamed into S3.

    The BODYSTRUCTURE comes in the same FETCH as at most the bound's worth of the part; a
    full window means there may be more, which continues in partial windows, decoded as
    they arrive.
    """
    ref = decode_attachment_id(attachment_id)
    window = get_settings().max_response_bytes
    with mail_connection(account_id) as conn:
        open_message(conn, ref.message)
        fetched = imap_messages.fetch_window(conn, ref.message.uid, ref.section, 0, window,
                                             extra_items=("BODYSTRUCTURE",))
        if fetched is None:
            raise _gone(ref.message)
        head = [fetched[0]]
        node = _find_part(bodystructure_tree(fetched[1].get(b"BODYSTRUCTURE")), ref.section)
        del fetched
        if node is None:
            raise AttachmentNotFoundError("the message has no such part", details={"part": ref.section})
        if len(head[0]) == window:
            chunks = _stream_rest(conn, ref.message, ref.section, head, StreamDecoder(node.encoding))
            return downloads.upload_stream(account_id, chunks, node.content_type, node.filename)
    content = decode_transfer_encoding(head[0], node.encoding)
    return downloads.prepare(account_id, content, node.content_type, node.filename)
