"""The MIME layer: pure functions from IMAP responses and raw message bytes to API values.

No sockets, no imapclient, no AWS: the IMAP adapter fetches, this package interprets. Nothing
here raises on malformed mail (problems are reported as ``defects``); only invalid
*arguments* raise (``TypeError``/``ValueError``).

Public interface (import from the submodules)::

    chalicelib.mime.structure
        parse_bodystructure(bodystructure) -> MessageStructure   # imapclient's parsed BODYSTRUCTURE
        bodystructure_tree(bodystructure) -> PartNode

    chalicelib.mime.decode
        parse_message(raw: bytes, *, max_text_bytes=None) -> ParsedMessage
        extract_part(raw: bytes, part: str) -> ExtractedPart | None   # None: no such section
        decode_transfer_encoding(payload: bytes, encoding) -> bytes    # for a fetched BODY[part]
        decode_part_payload(payload: bytes, encoding, charset, *, content_type=None, hint=None) -> str
        join_text_parts(texts, max_bytes=None) -> (text | None, cut: bool)
        html_to_text(html: str) -> str

    chalicelib.mime.header_fields
        decode_header_fields(message, hint, *, all_headers=True) -> HeaderFields

    chalicelib.mime.headers
        decode_header_value(value, *, fallback_charset=None) -> str
        parse_address_list(value, *, fallback_charset=None) -> list[{"name": str, "address": str}]
        parse_message_id(value) -> "<id>" | None
        parse_references(value) -> list["<id>"]
        parse_date(value) -> aware datetime | None

    chalicelib.mime.charsets
        decode_bytes(data, declared=None, *, hint=None) -> DecodedText(text, charset, problem)
        normalize_charset(label) -> python codec name | None

    chalicelib.mime.classify
        classify_part(node, *, in_alternative=False, related_resource=False) -> PartRole
        summarize_parts(root: PartNode) -> MessageStructure

Values (``chalicelib.mime.model``, frozen dataclasses)::

    MessageStructure(attachments: list[AttachmentInfo], text: TextParts)
    AttachmentInfo(part, filename, content_type, encoded_size, encoding, embedded, inline,
                   content_id, disposition)
    TextParts(plain: list[TextPartRef], html: list[TextPartRef]) + .plain_encoded_size,
              .html_encoded_size
    TextPartRef(part, content_type, charset, encoding, encoded_size)
    HeaderFields(subject, from_, sender, reply_to, to, cc, bcc, message_id, in_reply_to,
                 references, date, headers)                          # in .header_fields
    ParsedMessage(HeaderFields + text_plain, text_html, has_more,
                  attachments, text_parts, defects)                  # in .decode
    ExtractedPart(content: bytes, content_type, filename)           # in .decode

``part`` is always an IMAP section number ("1", "2.1", "1.2.1"): the same from Dovecot's
BODYSTRUCTURE (``structure``) and from the raw bytes (``decode``), because both build a
:class:`~chalicelib.mime.model.PartNode` tree and summarize it with one function
(:mod:`.classify`). Typical API use::

    listing:   parse_bodystructure(fetch(uid, "BODYSTRUCTURE"))
    message:   parse_message(fetch(uid, "BODY.PEEK[]"), max_text_bytes=...)
      or text parts alone: [decode_part_payload(fetch(uid, f"BODY.PEEK[{ref.part}]"),
                             ref.encoding, ref.charset, content_type=ref.content_type)
                            for ref in structure.text.plain] -> join_text_parts(...)
    download:  decode_transfer_encoding(fetch(uid, f"BODY.PEEK[{att.part}]"), att.encoding)

Module map: charsets (labels, fallback chain) <- encodedwords (RFC 2047) <- addresses,
params (RFC 2231) <- headers; transfer (CTE); model (values, section numbering) <- classify
(roles, text choice) <- structure (BODYSTRUCTURE) and tree (``email`` parse) <- decode;
htmltext (HTML -> text). See docs/mime.md.
"""
