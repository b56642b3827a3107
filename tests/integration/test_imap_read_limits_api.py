"""A mail server registered by an API user cannot exhaust the API's memory.

The account's server here is the test's own: it logs anyone in, then answers one command
(LIST, or a FETCH) with a literal announced as ``{900000000}`` and streams filler behind it.
The API must refuse on the announcement: a clear 502 ``ServerResponseTooLarge`` at once, a
few MB of memory at most, the connection closed, and every other account unaffected. Real
use stays within the caps: a 50 MB message is fetched whole from the real Dovecot.
"""

from __future__ import annotations

import secrets
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from chalicelib.imap import messages as imap_messages
from chalicelib.message_ids import MessageRef, encode_message_id
from chalicelib.services.mail_sessions import mail_connection
from tests.integration.mail_api_support import fill
from tests.support.line_servers import IMAP_GREETING, LineServer, flooding_imap_responder

SOURCE_ID = encode_message_id(MessageRef(path="INBOX", uid_validity=7, uid=1))
REQUESTS = {
    "LIST": "/v1/account/{account}/mailboxes",
    "FETCH": "/v1/account/{account}/messages?path=INBOX",
    "FETCH-source": f"/v1/account/{{account}}/message/{SOURCE_ID}/source",
}
MEMORY_BOUND_BYTES = 20 * 1024 * 1024


@pytest.fixture(params=sorted(REQUESTS))
def flooded(request, api) -> Iterator[tuple[LineServer, str, str]]:
    """(server, account, path of the request it floods): an account on a flooding server."""
    command = request.param.split("-", 1)[0]
    with LineServer(IMAP_GREETING, flooding_imap_responder({command})) as server:
        account = "flood-" + secrets.token_hex(6)
        response = api.post("/v1/account", {
            "account": account, "email": "victim@example.test",
            "imap": {"host": "127.0.0.1", "port": server.port, "secure": False, "tls": {"allowPlaintextAuth": True},
                     "auth": {"user": "victim@example.test", "pass": "secret"}}})
        assert response.status == 200, response.body
        yield server, account, REQUESTS[request.param].format(account=account)
        api.delete(f"/v1/account/{account}")


def test_a_huge_literal_is_a_clear_502_at_once_in_bounded_memory(api, account, flooded):
    server, hostile, path = flooded
    # When: the account's server answers with a 900 MB literal and streams it
    tracemalloc.start()
    started = time.monotonic()
    try:
        response = api.get(path)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # Then: a 502 with the stable code, quickly, having held a few MB at most
    assert response.status == 502, response.body
    assert response.json["code"] == "ServerResponseTooLarge"
    assert "900000000-byte literal" in response.json["error"]
    assert elapsed < 5, elapsed
    assert peak < MEMORY_BOUND_BYTES, peak
    # ... the connection was closed: what the server managed to push is what the socket buffers took
    assert server.bytes_sent < 64 * 1024 * 1024, server.bytes_sent

    # And: the same account fails the same way again (a new connection, not a half-read one),
    # its record is fine, and another account's mail is served as usual
    again = api.get(path)
    assert (again.status, again.json["code"]) == (502, "ServerResponseTooLarge")
    assert server.connections >= 3  # the verifying login, and one per failed request
    assert api.get(f"/v1/account/{hostile}").status == 200
    assert api.get(f"/v1/account/{account}/mailboxes").status == 200


def test_a_50_mb_message_is_still_fetched_whole(account, imap):
    # Given: a 50 MB message in the real Dovecot
    raw = b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n" + (b"y" * 998 + b"\r\n") * 50_000
    imap.create_folder("Big")
    [uid] = fill(imap, "Big", [raw])
    # When: the API's adapter fetches it whole (as forwarding with its attachments does)
    with mail_connection(account) as conn:
        imap_messages.select_mailbox(conn, "Big")
        source = imap_messages.fetch_source(conn, uid)
    # Then: every octet arrives
    assert source is not None and len(source) == len(raw) > 50_000_000


def test_a_server_flooding_the_login_is_refused_with_the_same_code(api):
    # Given: a server that answers LOGIN with a 900 MB literal
    with LineServer(IMAP_GREETING, flooding_imap_responder({"LOGIN"})) as server:
        # When: an account is registered on it (its settings are verified by logging in)
        response = api.post("/v1/account", {
            "account": "flood-" + secrets.token_hex(6), "email": "victim@example.test",
            "imap": {"host": "127.0.0.1", "port": server.port, "secure": False, "tls": {"allowPlaintextAuth": True},
                     "auth": {"user": "victim@example.test", "pass": "secret"}}})
    # Then: refused as every login failure is (422), with the stable code, not as a protocol error
    assert response.status == 422, response.body
    assert response.json["code"] == "ServerResponseTooLarge"
