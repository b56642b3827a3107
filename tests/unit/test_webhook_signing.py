"""Standard Webhooks signing: the published test vector, secrets, headers."""

from __future__ import annotations

import base64

import pytest

from chalicelib.webhooks.signing import generate_secret, parse_secret, sign, signed_headers

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_vector_is_reproduced_exactly():
    assert sign(parse_secret(VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_headers_carry_id_timestamp_and_signature():
    headers = signed_headers(parse_secret(VECTOR_SECRET), VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
    assert headers == {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP),
                       "webhook-signature": VECTOR_SIGNATURE}


def test_generated_secrets_are_fresh_32_byte_whsec_secrets():
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_") and len(parse_secret(first)) == 32


@pytest.mark.parametrize(("secret", "reason"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"),
    ("whsec_not base64!", "standard base64"),
    ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes"),
    ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
])
def test_malformed_secrets_are_refused_without_echoing_them(secret, reason):
    with pytest.raises(ValueError, match=reason) as caught:
        parse_secret(secret)
    assert secret not in str(caught.value)
