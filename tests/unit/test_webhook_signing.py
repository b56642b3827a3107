"""Standard Webhooks signing: the published test vector, secrets, headers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.webhooks.signing import EndpointSecrets, generate_secret, parse_secret, sign, signed_headers

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_vector_is_reproduced_exactly():
    assert sign(parse_secret(VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_headers_carry_id_timestamp_and_signature():
    headers = signed_headers([parse_secret(VECTOR_SECRET)], VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
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


# -- rotation: two signatures during the overlap, then one ---------------------------------------


ROTATED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends_then_only_the_new_one():
    # Given secrets rotated at noon with a 24 h overlap
    old, new = generate_secret(), generate_secret()
    rotated = EndpointSecrets(current=old).rotated(new, ROTATED_AT, timedelta(hours=24))

    # Then within the overlap a request carries both signatures, the new one first
    during = rotated.keys(ROTATED_AT + timedelta(hours=23, minutes=59))
    assert during == (parse_secret(new), parse_secret(old))
    headers = signed_headers(during, VECTOR_ID, VECTOR_BODY, timestamp=VECTOR_TIMESTAMP)
    assert headers["webhook-signature"] == " ".join([
        sign(parse_secret(new), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
        sign(parse_secret(old), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)])
    # ... and from the end of the overlap only the new one
    assert rotated.keys(ROTATED_AT + timedelta(hours=24)) == (parse_secret(new),)


def test_a_second_rotation_within_the_overlap_ends_the_oldest_secret_at_once():
    first, second, third = generate_secret(), generate_secret(), generate_secret()
    later = ROTATED_AT + timedelta(hours=1)
    twice = EndpointSecrets(first).rotated(second, ROTATED_AT, timedelta(hours=24)).rotated(
        third, later, timedelta(hours=24))
    assert twice.keys(later) == (parse_secret(third), parse_secret(second))


@pytest.mark.parametrize("secrets", [
    EndpointSecrets(current=VECTOR_SECRET),
    EndpointSecrets(current=VECTOR_SECRET).rotated(generate_secret(), ROTATED_AT, timedelta(hours=24)),
])
def test_stored_form_round_trips_and_a_bare_secret_is_the_form_without_a_previous_one(secrets):
    assert EndpointSecrets.from_text(secrets.to_text()) == secrets
    assert EndpointSecrets.from_text(VECTOR_SECRET) == EndpointSecrets(current=VECTOR_SECRET)
