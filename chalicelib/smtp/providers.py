"""Provider behaviour that changes what a client must do after sending.

Gmail files every message submitted through smtp.gmail.com into "[Gmail]/Sent Mail"
itself, and Exchange Online / Outlook.com put mail submitted over SMTP AUTH into "Sent
Items". A client that also APPENDs a copy makes the user see the message twice, so for
these hosts the copy is skipped unless the request asks for it explicitly (``copy: true``).
"""

from __future__ import annotations

SERVERS_THAT_STORE_SENT_MAIL = frozenset({
    "smtp.gmail.com", "smtp.googlemail.com",      # Gmail and Google Workspace
    "smtp.office365.com", "smtp-mail.outlook.com",  # Exchange Online, Outlook.com
})


def stores_sent_copy(smtp_host: str) -> bool:
    """Whether submitting through ``smtp_host`` already leaves a copy in the user's Sent folder."""
    return smtp_host.lower().rstrip(".") in SERVERS_THAT_STORE_SENT_MAIL
