"""OAuth2 bearer-token logins over SASL (XOAUTH2, OAUTHBEARER), shared by the IMAP and SMTP adapters.

A login with an access token is one SASL exchange::

    client: AUTHENTICATE XOAUTH2            (SMTP: AUTH XOAUTH2 [initial response])
    server: +                               empty challenge: send the login string
    client: base64(user=U^Aauth=Bearer T^A^A)
    server: OK / 235                        accepted
      or    + base64({"status":"401",...})  rejected: the error comes as a challenge (Gmail,
    client: (empty line)                    Dovecot, Microsoft); the client must answer it
    server: NO [AUTHENTICATIONFAILED] ...   with an empty line to get the final NO / 535

:class:`BearerExchange` is the client side of that: it sends the login string once, answers
any later challenge with an empty response (never the token again), and keeps the server's
error challenge (:attr:`BearerExchange.challenge`) for the error details. The token is never
part of anything this module returns but the login string itself, and it is kept out of reprs.

Mechanism: XOAUTH2 when offered (Gmail, Microsoft, Yahoo, Dovecot), OAUTHBEARER (RFC 7628) when
only that is, XOAUTH2 when the server names neither (Microsoft's SMTP lists XOAUTH2 only after
STARTTLS; trying is the only way to know).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Mechanism = Literal["XOAUTH2", "OAUTHBEARER"]
# A server's error challenge is a short JSON object; more is not an error description.
CHALLENGE_MAX_CHARS = 1024


def choose_mechanism(offered: Iterable[str]) -> Mechanism:
    """The SASL mechanism to use, given the mechanism names the server announced."""
    names = {name.upper() for name in offered}
    if "XOAUTH2" not in names and "OAUTHBEARER" in names:
        return "OAUTHBEARER"
    return "XOAUTH2"


def login_string(mechanism: Mechanism, user: str, access_token: str) -> str:
    """The client's first response (before base64): XOAUTH2's or RFC 7628's GS2 form."""
    if mechanism == "OAUTHBEARER":
        authzid = user.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={authzid},\x01auth=Bearer {access_token}\x01\x01"
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


@dataclass
class BearerExchange:
    """The client side of one bearer login; call it with each server challenge (bytes or text).

    The first call (the server's empty challenge, or ``None`` for an initial response) gets
    the login string; every later call gets ``""``, and its challenge is kept as the error.
    """

    mechanism: Mechanism
    user: str
    access_token: str = field(repr=False)
    challenge: str | None = None
    _sent: bool = field(default=False, repr=False)

    def __call__(self, challenge: bytes | str | None = None) -> str:
        if not self._sent:
            self._sent = True
            return login_string(self.mechanism, self.user, self.access_token)
        self.challenge = _readable(challenge)
        return ""


def _readable(challenge: bytes | str | None) -> str | None:
    """The challenge as text, if it is short printable text (imaplib and smtplib hand it over decoded)."""
    if challenge is None:
        return None
    raw = challenge if isinstance(challenge, bytes) else challenge.encode("utf-8", "replace")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or len(text) > CHALLENGE_MAX_CHARS or not text.isprintable():
        return None
    return text


def encoded_length(mechanism: Mechanism, user: str, access_token: str) -> int:
    """How many characters the base64 login string takes on the wire."""
    return len(base64.b64encode(login_string(mechanism, user, access_token).encode("utf-8")))

