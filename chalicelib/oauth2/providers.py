"""What an OAuth2 application's ``provider`` means: its endpoints, scopes and mail servers.

Pure data, no I/O: :func:`resolve_provider` turns an application's stored fields into a
:class:`ProviderSettings`, the one place the Gmail and Microsoft presets live::

    provider  authorize / token URLs                     scopes (baseScopes "imap")    IMAP / SMTP
    gmail     accounts.google.com/o/oauth2/v2/auth       https://mail.google.com/      imap.gmail.com:993 TLS
              oauth2.googleapis.com/token                                              smtp.gmail.com:465 TLS
    outlook   login.microsoftonline.com/{authority}/     IMAP.AccessAsUser.All,        outlook.office365.com:993 TLS
              oauth2/v2.0/{authorize,token}              SMTP.Send, offline_access     smtp.office365.com:587 STARTTLS
    generic   the app's authorizationUrl / tokenUrl      the app's scopes              the app's imap / smtp

Invariants: scopes keep their order and appear once (base, then extra, minus skipped);
Microsoft's ``authority`` is ``common`` unless given (any tenant id or domain is a path
segment, never a URL of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

Provider = Literal["gmail", "outlook", "generic"]
PROVIDERS: tuple[Provider, ...] = ("gmail", "outlook", "generic")

GMAIL_AUTHORIZATION_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GMAIL_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
GMAIL_SCOPES = ("https://mail.google.com/",)
MICROSOFT_LOGIN_BASE = "https://login.microsoftonline.com"
MICROSOFT_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send",
                    # Without it Microsoft issues no refresh token.
                    "offline_access")
DEFAULT_AUTHORITY = "common"


@dataclass(frozen=True)
class Endpoint:
    """A mail server an application's accounts log in to (``secure``: implicit TLS; else STARTTLS)."""

    host: str
    port: int
    secure: bool


GMAIL_IMAP = Endpoint("imap.gmail.com", 993, True)
GMAIL_SMTP = Endpoint("smtp.gmail.com", 465, True)
MICROSOFT_IMAP = Endpoint("outlook.office365.com", 993, True)
# Microsoft's submission service speaks STARTTLS only (no implicit TLS port).
MICROSOFT_SMTP = Endpoint("smtp.office365.com", 587, False)


@dataclass(frozen=True)
class ProviderSettings:
    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]
    imap: Endpoint
    smtp: Endpoint | None


@dataclass(frozen=True)
class GenericProvider:
    """The fields a ``generic`` application gives itself."""

    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]
    imap: Endpoint
    smtp: Endpoint | None = None


def microsoft_url(authority: str | None, action: Literal["authorize", "token"]) -> str:
    segment = quote(authority or DEFAULT_AUTHORITY, safe="")
    return f"{MICROSOFT_LOGIN_BASE}/{segment}/oauth2/v2.0/{action}"


def combine_scopes(base: tuple[str, ...], extra: tuple[str, ...] = (),
                   skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Base then extra scopes, each once, in order, without the skipped ones."""
    combined: list[str] = []
    for scope in (*base, *extra):
        if scope not in skip and scope not in combined:
            combined.append(scope)
    return tuple(combined)


def resolve_provider(provider: Provider, *, authority: str | None = None, generic: GenericProvider | None = None,
                     extra_scopes: tuple[str, ...] = (), skip_scopes: tuple[str, ...] = ()) -> ProviderSettings:
    """The endpoints, scopes and servers of an application (``generic`` needs ``generic``)."""
    if provider == "gmail":
        return ProviderSettings(GMAIL_AUTHORIZATION_URL, GMAIL_TOKEN_URL,
                                combine_scopes(GMAIL_SCOPES, extra_scopes, skip_scopes), GMAIL_IMAP, GMAIL_SMTP)
    if provider == "outlook":
        return ProviderSettings(microsoft_url(authority, "authorize"), microsoft_url(authority, "token"),
                                combine_scopes(MICROSOFT_SCOPES, extra_scopes, skip_scopes),
                                MICROSOFT_IMAP, MICROSOFT_SMTP)
    if generic is None:
        raise ValueError("a generic provider needs its own endpoints and servers")
    return ProviderSettings(generic.authorization_url, generic.token_url,
                            combine_scopes(generic.scopes, extra_scopes, skip_scopes), generic.imap, generic.smtp)
