"""Outgoing mailboxes: one address as it goes into a header and into the SMTP envelope.

An address reaches this module already checked for syntax (``schemas.common.check_address_syntax``)
and normalized (NFC, lower-case domain). What is left is deciding its two wire forms:

    address                 header form (ASCII message)              envelope (MAIL/RCPT)
    ----------------------  ---------------------------------------  ---------------------------
    ann@example.com         ann@example.com                          ann@example.com
    ann@bücher.example      ann@xn--bcher-kva.example  (IDNA 2008)   ann@xn--bcher-kva.example
    jörg@bücher.example     needs SMTPUTF8 (RFC 6531/6532): raw UTF-8 in both, or no send at all

A Unicode *domain* always has an ASCII form (its A-label), so only a Unicode *local part*
makes a message need SMTPUTF8. Display names never need it: they are RFC 2047-encoded.

Invariant: :attr:`Mailbox.address` is what the caller gave (normalized); the ASCII form is
derived, never stored in its place, so responses show the address the developer sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address

import idna

from chalicelib.smtp.headertext import clean_header_text


class AddressEncodingError(ValueError):
    """The domain has no IDNA 2008 A-label (the syntax check let through something IDNA refuses)."""


def ascii_domain(domain: str) -> str:
    """The A-label form of a domain (``bücher.example`` -> ``xn--bcher-kva.example``)."""
    if domain.isascii():
        return domain.lower()
    try:
        # UTS 46 mapping first: the same case folding and width mapping browsers apply.
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise AddressEncodingError(f"domain {domain!r} has no ASCII form: {exc}") from None


@dataclass(frozen=True)
class Mailbox:
    """A display name (possibly empty) and an address."""

    name: str
    address: str

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local_part.isascii()

    def envelope_address(self, *, smtputf8: bool) -> str:
        """The address for MAIL FROM / RCPT TO: A-label domain unless the session is SMTPUTF8."""
        if smtputf8:
            return self.address
        return f"{self.local_part}@{ascii_domain(self.domain)}"

    def header_address(self, *, smtputf8: bool) -> Address:
        """The ``email`` package's Address for a header of an ASCII or an SMTPUTF8 message."""
        domain = self.domain if smtputf8 else ascii_domain(self.domain)
        # A display name is one line of text: whatever would break the header becomes a space.
        name = clean_header_text(self.name or "").strip()
        return Address(display_name=name, username=self.local_part, domain=domain)

    def same_address(self, other: str) -> bool:
        """Case-insensitive comparison, Unicode and A-label domains considered equal."""
        return address_key(self.address) == address_key(other)


def address_key(address: str) -> str:
    """A comparison key for an address: the local part as given (RFC 5321 lets servers treat
    it case-sensitively, but every real one ignores case), the domain in its A-label form."""
    local, _, domain = address.rpartition("@")
    try:
        domain = ascii_domain(domain)
    except AddressEncodingError:
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


def unique_mailboxes(mailboxes: list[Mailbox], *, exclude: set[str] | None = None) -> list[Mailbox]:
    """Mailboxes in order, each address once (first occurrence wins), minus ``exclude`` keys."""
    seen = set(exclude or ())
    kept = []
    for mailbox in mailboxes:
        key = address_key(mailbox.address)
        if key not in seen:
            seen.add(key)
            kept.append(mailbox)
    return kept
