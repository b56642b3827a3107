"""The hosted authorization's ``state``: signed, expiring, bound to the deployment key; and the
PKCE verifier derived from it (pure: keys and clocks are parameters)."""

from __future__ import annotations

import re

import pytest
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN

from chalicelib.oauth2.code_exchange import authorize_url
from chalicelib.services.oauth2_authorization_state import AuthorizationStateError, new_state, open_state, pkce_verifier

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = 1_800_000_000.0


def test_a_state_opens_to_what_it_carries_until_it_expires():
    state, carried = new_state(NOW, 600, key=KEY)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", state)
    assert open_state(state, NOW + 599, key=KEY) == carried
    assert carried.expires == int(NOW) + 600
    with pytest.raises(AuthorizationStateError) as expired:
        open_state(state, NOW + 600, key=KEY)
    assert expired.value.reason == "expired"


@pytest.mark.parametrize("tamper", [
    # the tag: its next-to-last character (the last one carries base64 padding bits, so changing
    # A<->B there can leave the decoded tag as it was: 1 state in 20 passed that "tamper")
    lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],
    lambda s: ("A" if s[1] != "A" else "B").join((s[:1], s[2:])),   # the expiry
    lambda s: s + "A",
    lambda s: "",
    lambda s: "not a state!",
])
def test_a_tampered_state_is_invalid(tamper):
    state, _ = new_state(NOW, 600, key=KEY)
    with pytest.raises(AuthorizationStateError) as refused:
        open_state(tamper(state), NOW, key=KEY)
    assert refused.value.reason == "invalid"


def test_a_state_of_another_deployment_is_invalid():
    state, _ = new_state(NOW, 600, key=OTHER_KEY)
    with pytest.raises(AuthorizationStateError):
        open_state(state, NOW, key=KEY)


def test_states_are_unique_and_verifiers_derived_per_state_and_key():
    first, a = new_state(NOW, 600, key=KEY)
    second, b = new_state(NOW, 600, key=KEY)
    assert first != second and a.id != b.id
    verifier = pkce_verifier(a.id, KEY)
    assert CODE_VERIFIER_PATTERN.match(verifier) and len(verifier) == 43
    assert verifier == pkce_verifier(a.id, KEY)
    assert verifier not in (pkce_verifier(b.id, KEY), pkce_verifier(a.id, OTHER_KEY))
    assert verifier not in first


def test_the_authorize_url_asks_google_for_offline_access_and_never_carries_the_verifier():
    url = authorize_url("https://accounts.google.com/o/oauth2/v2/auth", client_id="c", redirect_uri="https://a/oauth",
                        scopes=("https://mail.google.com/",), state="s", verifier="v" * 43, provider="gmail",
                        login_hint="u@example.com")
    assert "access_type=offline" in url and "prompt=consent" in url and "code_challenge_method=S256" in url
    assert "login_hint=u%40example.com" in url and "v" * 43 not in url
    generic = authorize_url("https://id.example/authorize", client_id="c", redirect_uri="https://a/oauth",
                            scopes=("mail",), state="s", verifier="v" * 43, provider="generic")
    assert "access_type" not in generic and "prompt" not in generic
