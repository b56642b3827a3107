"""examples/webhook_receiver.py, the receiver docs/migrating-from-emailengine.md quotes, run as a
process against real deliveries from the dispatcher, in both signature styles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "webhook_receiver.py"
DOC = ROOT / "docs" / "migrating-from-emailengine.md"


class RunningExample:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url
        self.lines: list[dict] = []

    def read_events(self, count: int) -> list[dict]:
        while len(self.lines) < count:
            line = self.process.stdout.readline() if self.process.stdout else ""
            assert line, "the example receiver exited"
            self.lines.append(json.loads(line))
        return self.lines

    def stop_and_read_all(self) -> list[dict]:
        """Every event it printed, read after it has stopped (so none can still be on its way)."""
        self.process.terminate()
        rest, _ = self.process.communicate(timeout=10)
        return self.lines + [json.loads(line) for line in rest.splitlines()]


@contextmanager
def example_receiver(**secrets: str) -> Iterator[RunningExample]:
    """The example as a user runs it (its own interpreter, secrets in the environment), on a free port."""
    env = {key: value for key, value in os.environ.items() if key not in ("WEBHOOK_SECRET", "SERVICE_SECRET")}
    process = subprocess.Popen([sys.executable, str(EXAMPLE), "0"], env={**env, **secrets}, text=True,
                               stdout=subprocess.PIPE, cwd=EXAMPLE.parent)
    try:
        first = process.stdout.readline() if process.stdout else ""
        match = re.match(r"listening on (http://\S+)", first)
        assert match, first
        yield RunningExample(process, match.group(1) + "hooks")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


def test_the_doc_quotes_the_example_file_as_it_is():
    quoted = re.search(r"<!-- include: examples/webhook_receiver.py -->\n```python\n(.*?)```", DOC.read_text(),
                       re.DOTALL)
    assert quoted is not None
    assert quoted.group(1) == EXAMPLE.read_text()


@pytest.mark.timeout(60)
def test_the_example_verifies_both_signature_styles_of_real_deliveries(webhooks, api):
    from chalicelib.webhooks.signing import generate_secret

    # Given the example receiver holding both secrets, and webhooks signed both ways
    secret, service_secret = generate_secret(), "an EmailEngine serviceSecret, kept"
    with example_receiver(WEBHOOK_SECRET=secret, SERVICE_SECRET=service_secret) as receiver:
        webhooks.configure(receiver.url, secret=secret)
        answer = api.post("/v1/settings", {"webhooksSignature": "emailengine", "serviceSecret": service_secret})
        assert answer.status == 200, answer.body

        # When the dispatcher delivers two events (one of them twice)
        first, second = webhooks.event("acc-example", "messageNew"), webhooks.event("acc-example", "messageDeleted")
        webhooks.publish(first, second)
        webhooks.run_until(lambda: all(getattr(webhooks.delivery(e.id), "status", None) == "delivered"
                                       for e in (first, second)))
        replay_id = api.post(f"/v1/webhooks/replay/{first.id}", {}).json["replayId"]
        webhooks.run_until(lambda: (webhooks.delivery(first.id).run_id, webhooks.delivery(first.id).status)
                           == (replay_id, "delivered"))

        # Then the example accepted each (2xx: logged delivered), verified by both styles, once each
        assert receiver.stop_and_read_all() == [
            {"id": first.id, "event": "messageNew", "account": "acc-example", "verified": ["standard", "emailengine"]},
            {"id": second.id, "event": "messageDeleted", "account": "acc-example",
             "verified": ["standard", "emailengine"]}]


@pytest.mark.timeout(60)
def test_the_example_refuses_requests_it_cannot_verify(webhooks, api):
    from chalicelib.webhooks.signing import generate_secret

    # Given the example expecting EmailEngine's signature, and the dispatcher signing the standard way only
    with example_receiver(SERVICE_SECRET="an EmailEngine serviceSecret, kept") as receiver:
        webhooks.configure(receiver.url, secret=generate_secret())
        event = webhooks.event("acc-example-no", "messageNew")

        # When an event is delivered
        webhooks.publish(event)
        webhooks.run_until(lambda: getattr(webhooks.delivery(event.id), "last_status_code", None) is not None)

        # Then the example answered 401: the event waits for a retry
        logged = webhooks.delivery(event.id)
        assert (logged.status, logged.last_status_code) == ("pending", 401)


@pytest.mark.timeout(60)
def test_the_example_with_the_standard_secret_only_accepts_standard_deliveries(webhooks, api):
    from chalicelib.webhooks.signing import generate_secret

    secret = generate_secret()
    with example_receiver(WEBHOOK_SECRET=secret) as receiver:
        webhooks.configure(receiver.url, secret=secret)
        event = webhooks.event("acc-example-std", "messageUpdated")

        webhooks.publish(event)
        webhooks.run_until(lambda: getattr(webhooks.delivery(event.id), "status", None) == "delivered")

        assert receiver.read_events(1) == [
            {"id": event.id, "event": "messageUpdated", "account": "acc-example-std", "verified": ["standard"]}]
