"""What recording the SMTP acceptance on an Idempotency-Key costs a normal ``POST /submit``.

    .venv/bin/python bench/submit_acceptance.py [--rounds 20]

Same stack as ``bench/send_latency.py`` (Dovecot, Postfix, moto). Sends the same message
``--rounds`` times each way, alternating, each with a fresh ``Idempotency-Key``:

    with the write     as shipped: the key's record becomes COMPLETED with the compact answer
                       the moment the SMTP server accepts (one DynamoDB UpdateItem)
    without            the baseline: that write skipped (what the code did before)

and prints the API response time p50 both ways, and the p50 of the write itself (timed
around Powertools' ``save_success``). Against moto on loopback the write costs what a moto
UpdateItem costs; on AWS an UpdateItem in the same region is single-digit milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.send_latency import ATTACHMENT, HTML, TEXT, Stack, percentile, setup_aws  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    from chalice.test import Client

    from app import app
    from chalicelib.services import idempotency

    with Stack() as stack:
        sender, recipient = "ann@example.test", "bob@example.test"
        password = secrets.token_urlsafe(12)
        stack.dovecot.add_user(sender, password)
        stack.dovecot.add_user(recipient, secrets.token_urlsafe(12))
        token = setup_aws()
        client = Client(app, stage_name="local")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(path: str, body: dict, key: str | None = None) -> dict:
            extra = {"Idempotency-Key": key} if key else {}
            response = client.http.post(path, headers={**headers, **extra}, body=json.dumps(body))
            if response.status_code != 200:
                raise SystemExit(f"POST {path} -> {response.status_code}: {response.body[:300]!r}")
            return json.loads(response.body)

        account = call("/v1/account", {
            "account": "bench", "email": sender, "name": "Ann Sender",
            "imap": {"host": "localhost", "port": stack.dovecot.imap_port, "secure": False,
                     "auth": {"user": sender, "pass": password}},
            "smtp": {"host": "localhost", "port": stack.postfix.smtp_port, "secure": False,
                     "auth": {"user": sender, "pass": password}}})["account"]
        body = {"to": [{"name": "Bob", "address": recipient}], "subject": "Weekly report", "text": TEXT,
                "html": HTML, "attachments": [{"filename": "report.pdf",
                                               "content": base64.b64encode(ATTACHMENT).decode()}]}

        shipped = idempotency._Outcome.recorder
        writes: list[float] = []

        def timed_recorder(self, store, request):  # type: ignore[no-untyped-def]
            done = shipped(self, store, request)

            def timed(answer: dict) -> None:
                started = time.perf_counter()
                done(answer)
                writes.append(time.perf_counter() - started)
            return timed

        def without_write(self, store, request):  # type: ignore[no-untyped-def]
            def done(answer: dict) -> None:
                self.done = answer
            return done

        ways = {"with the write": timed_recorder, "without": without_write}
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for round_number in range(args.rounds + 3):  # the first 3 warm up pools and caches
            for name, recorder in ways.items():
                idempotency._Outcome.recorder = recorder  # type: ignore[method-assign]
                started = time.perf_counter()
                call(f"/v1/account/{account}/submit", body, key=f"bench-{secrets.token_hex(8)}")
                if round_number >= 3:
                    samples[name].append(time.perf_counter() - started)
        idempotency._Outcome.recorder = shipped  # type: ignore[method-assign]
        writes = writes[3:]

        print(f"\n{args.rounds} submits each way, alternating, each with a new Idempotency-Key (moto on loopback)\n")
        for name in ways:
            print(f"{name:<16} p50 {percentile(samples[name], 0.5) * 1000:7.1f} ms   "
                  f"p95 {percentile(samples[name], 0.95) * 1000:7.1f} ms")
        difference = percentile(samples["with the write"], 0.5) - percentile(samples["without"], 0.5)
        print(f"difference of the p50s: {difference * 1000:+.1f} ms; the write itself: p50 "
              f"{percentile(writes, 0.5) * 1000:.1f} ms, p95 {percentile(writes, 0.95) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
