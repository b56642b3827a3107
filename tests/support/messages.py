"""Test messages as a mail client would write them: one builder for every test that needs mail."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

Attachment = tuple[str, str, bytes]  # (filename, content type, content)


def build_message(*, sender: str, to: str, subject: str, body: str, date: str, message_id: str,
                  html: str | None = None, attachments: tuple[Attachment, ...] | list[Attachment] = (),
                  cc: str | None = None, reply_to: str | None = None, references: str | None = None) -> bytes:
    """A text (or text + HTML alternative) message with attachments, CRLF line ends as stored
    (Dovecot normalizes bare LFs, so tests compare against what the server keeps)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id
    if references:
        message["References"] = references
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content_type, content in attachments:
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=policy.SMTP)
