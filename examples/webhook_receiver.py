"""A webhook receiver for imapless that verifies both signature styles (standard library only).

    WEBHOOK_SECRET=whsec_...   Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
    SERVICE_SECRET=...         EmailEngine's X-EE-Wh-Signature (setting webhooksSignature "emailengine")

    WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080

Every signature style it has a secret for must verify; at least one secret is needed.
An authentic event is answered 204 at once and printed as one JSON line; a duplicate
(the same id again: a retry or a replay) is answered 204 and not printed again; anything
else gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300  # refuse old (replayed) requests


def verify_standard(secret: str, headers, body: bytes) -> bool:
    """Standard Webhooks: HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed with the decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for signature in headers.get("webhook-signature", "").split():  # two during a secret rotation
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


def verify_emailengine(service_secret: str, headers, body: bytes) -> bool:
    """EmailEngine: HMAC-SHA256 of the body keyed with the service secret as text, base64url unpadded."""
    digest = hmac.new(service_secret.encode(), body, hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(headers.get("x-ee-wh-signature", ""), expected)


class Receiver(BaseHTTPRequestHandler):
    seen: set[str] = set()  # keep the ids you processed for a few days, in a real store

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        checks = {"standard": (os.environ.get("WEBHOOK_SECRET"), verify_standard),
                  "emailengine": (os.environ.get("SERVICE_SECRET"), verify_emailengine)}
        configured = [style for style, (secret, _) in checks.items() if secret]
        verified = [style for style in configured if checks[style][1](checks[style][0], self.headers, body)]
        if not configured or verified != configured:
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        self.send_response(204)  # answer first, work afterwards
        self.end_headers()
        event_id = self.headers.get("webhook-id") or self.headers.get("x-ee-wh-event-id") or event["id"]
        if event_id not in self.seen:
            self.seen.add(event_id)
            print(json.dumps({"id": event_id, "event": event["event"], "account": event["account"],
                              "verified": verified}), flush=True)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per event on stdout is all this example prints


if __name__ == "__main__":
    if not (os.environ.get("WEBHOOK_SECRET") or os.environ.get("SERVICE_SECRET")):
        sys.exit("set WEBHOOK_SECRET and/or SERVICE_SECRET")
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), Receiver)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()
