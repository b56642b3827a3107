"""imapless: a REST API, change events and signed webhooks over IMAP/SMTP mailboxes."""
