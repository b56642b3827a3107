"""Provider presets: the URLs, scopes and mail servers each OAuth2 provider produces (no network)."""

from __future__ import annotations

import pytest

from chalicelib.oauth2.providers import Endpoint, GenericProvider, combine_scopes, resolve_provider


def test_gmail_preset():
    gmail = resolve_provider("gmail")
    assert gmail.authorization_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert gmail.token_url == "https://oauth2.googleapis.com/token"
    assert gmail.scopes == ("https://mail.google.com/",)
    assert gmail.imap == Endpoint("imap.gmail.com", 993, True)
    assert gmail.smtp == Endpoint("smtp.gmail.com", 465, True)


@pytest.mark.parametrize(("authority", "segment"), [
    (None, "common"), ("common", "common"), ("organizations", "organizations"), ("consumers", "consumers"),
    ("8eaef023-2b34-4da1-9baa-8bc8c9d6a490", "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"),
    ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
    # A tenant id is one path segment: it can never turn the URL into another one.
    ("evil.example/x?y", "evil.example%2Fx%3Fy"),
])
def test_microsoft_preset_per_authority(authority, segment):
    outlook = resolve_provider("outlook", authority=authority)
    assert outlook.authorization_url == f"https://login.microsoftonline.com/{segment}/oauth2/v2.0/authorize"
    assert outlook.token_url == f"https://login.microsoftonline.com/{segment}/oauth2/v2.0/token"
    assert outlook.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All",
                              "https://outlook.office.com/SMTP.Send", "offline_access")
    assert outlook.imap == Endpoint("outlook.office365.com", 993, True)
    assert outlook.smtp == Endpoint("smtp.office365.com", 587, False)  # STARTTLS


def test_generic_provider_uses_its_own_fields():
    own = GenericProvider("https://id.example/authorize", "https://id.example/token", ("mail", "openid"),
                          Endpoint("imap.example", 143, False), Endpoint("smtp.example", 587, False))
    generic = resolve_provider("generic", generic=own, skip_scopes=("openid",))
    assert (generic.authorization_url, generic.token_url) == ("https://id.example/authorize",
                                                              "https://id.example/token")
    assert generic.scopes == ("mail",)
    assert (generic.imap, generic.smtp) == (own.imap, own.smtp)
    with pytest.raises(ValueError, match="generic"):
        resolve_provider("generic")


@pytest.mark.parametrize(("base", "extra", "skip", "expected"), [
    (("a", "b"), (), (), ("a", "b")),
    (("a", "b"), ("c", "a"), (), ("a", "b", "c")),
    (("a", "b"), ("c",), ("b",), ("a", "c")),
    (("a",), (), ("a",), ()),
])
def test_scopes_combine_in_order_once(base, extra, skip, expected):
    assert combine_scopes(base, extra, skip) == expected


def test_extra_and_skipped_scopes_apply_to_presets():
    gmail = resolve_provider("gmail", extra_scopes=("openid", "email"))
    assert gmail.scopes == ("https://mail.google.com/", "openid", "email")
    outlook = resolve_provider("outlook", skip_scopes=("https://outlook.office.com/SMTP.Send",))
    assert "https://outlook.office.com/SMTP.Send" not in outlook.scopes
