"""Submit -> visible in the recipient's INBOX: the API against plain smtplib, same message, same run.

    .venv/bin/python bench/send_latency.py [--rounds 30]

Starts its own test PKI, Dovecot, Postfix (delivering into that Dovecot over LMTP) and moto,
registers a sender account through the API, then sends the same message (text + HTML +
a 30 KB attachment; only the Message-ID differs) ``--rounds`` times each way, alternating:

    API               POST /v1/account/{id}/submit through chalice.test.Client (routing, token,
                      validation, account + credentials, MIME build, pooled SMTP session,
                      then the Sent copy over IMAP), defaults as a client would use them
    smtplib           what a script does: connect, STARTTLS, AUTH, sendmail, QUIT per message
    smtplib (warm)    one smtplib session kept open for the whole run; once the connection has
                      left Linux's TCP quick-ack mode, Nagle holds the last TLS record of each
                      message until the server's delayed ACK (~40 ms)
    warm + NODELAY    the same with TCP_NODELAY, as the API's pooled sessions have (the floor)

Latency is measured from just before the call until a separate IMAP connection on the
recipient's INBOX sees the message (NOOP every 2 ms reports EXISTS; Dovecot's IDLE would add
its ~0.5 s notification batching). Goal: API p50 <= smtplib p50 + 100 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.support.aws as test_aws  # noqa: E402 - sets the AWS environment before chalicelib is imported

POLL_SECONDS = 0.002
VISIBLE_TIMEOUT_SECONDS = 15.0
ATTACHMENT = os.urandom(30_000)
TEXT = "Hello Bob,\n\nthe report for this week is attached. Grüße,\nAnn\n"
HTML = "<p>Hello Bob,</p><p>the report for this week is attached.</p><p>Grüße,<br>Ann</p>"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Stack:
    """PKI, Dovecot, Postfix and moto for the run; always stopped."""

    def __init__(self) -> None:
        from tests.support.certs import make_test_pki
        from tests.support.mailservers import Dovecot, Postfix

        self.workdir = Path(tempfile.mkdtemp(prefix="bench-send-"))
        self.pki = make_test_pki(self.workdir / "pki")
        os.environ["SSL_CERT_FILE"] = str(self.pki.ca_file)
        self.dovecot = Dovecot(self.pki)
        self.postfix = Postfix(self.dovecot, self.pki)
        self.moto = None

    def __enter__(self) -> Stack:
        import logging

        from moto.server import ThreadedMotoServer

        self.dovecot.start()
        self.postfix.start()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=test_aws.MOTO_PORT, verbose=False)
        self.moto.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from chalicelib.services import mail_sessions
        from chalicelib.smtp.pool import reset_pool

        reset_pool()
        mail_sessions.reset_pool()
        if self.moto is not None:
            self.moto.stop()
        self.postfix.stop()
        self.dovecot.stop()


def setup_aws() -> str:
    import boto3

    from chalicelib.services.tokens import register_token
    from local.resources import create_resources

    create_resources(ROOT / "template.yaml", stack_name="imapless", endpoint_url=test_aws.MOTO_ENDPOINT,
                     region=test_aws.REGION)
    kms = boto3.client("kms", region_name=test_aws.REGION, endpoint_url=test_aws.MOTO_ENDPOINT)
    kms.create_alias(AliasName="alias/imapless",
                     TargetKeyId=kms.create_key(Description="bench")["KeyMetadata"]["KeyId"])
    token = "bench-" + secrets.token_hex(16)
    register_token(token, description="bench", scopes=["*"])
    return token


class InboxWatcher:
    """Polls the recipient's INBOX with NOOP and notes when each new message appears."""

    def __init__(self, stack: Stack, user: str, password: str) -> None:
        from imapclient import IMAPClient

        context = ssl.create_default_context(cafile=str(stack.pki.ca_file))
        self.client = IMAPClient("localhost", port=stack.dovecot.imaps_port, ssl=True, ssl_context=context)
        self.client.login(user, password)
        self.exists = self.client.select_folder("INBOX")[b"EXISTS"]

    def time_until_next(self, send: Callable[[], None]) -> float:
        """Seconds from calling ``send`` until one more message is in the INBOX."""
        seen = threading.Event()
        wanted = self.exists + 1
        arrived: list[float] = []

        def poll() -> None:
            deadline = time.monotonic() + VISIBLE_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                for response in self.client.noop()[1]:
                    if len(response) == 2 and response[1] == b"EXISTS" and response[0] >= wanted:
                        arrived.append(time.perf_counter())
                        seen.set()
                        return
                time.sleep(POLL_SECONDS)
            seen.set()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started = time.perf_counter()
        send()
        seen.wait(VISIBLE_TIMEOUT_SECONDS + 1)
        poller.join()
        if not arrived:
            raise SystemExit("a message did not arrive within the timeout")
        self.exists = wanted
        return arrived[0] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from chalice.test import Client

    from app import app
    from chalicelib.mime.decode import html_to_text
    from chalicelib.smtp.addresses import Mailbox
    from chalicelib.smtp.compose import AttachmentSpec, OutgoingMessage, compose

    with Stack() as stack:
        sender, recipient = "ann@example.test", "bob@example.test"
        sender_password, recipient_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        stack.dovecot.add_user(sender, sender_password)
        stack.dovecot.add_user(recipient, recipient_password)
        token = setup_aws()
        client = Client(app, stage_name="local")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(path: str, body: dict) -> dict:
            response = client.http.post(path, headers=headers, body=json.dumps(body))
            if response.status_code != 200:
                raise SystemExit(f"POST {path} -> {response.status_code}: {response.body[:300]!r}")
            return json.loads(response.body)

        account = call("/v1/account", {
            "account": "bench", "email": sender, "name": "Ann Sender",
            "imap": {"host": "localhost", "port": stack.dovecot.imap_port, "secure": False,
                     "auth": {"user": sender, "pass": sender_password}},
            "smtp": {"host": "localhost", "port": stack.postfix.smtp_port, "secure": False,
                     "auth": {"user": sender, "pass": sender_password}}})["account"]
        submit_body = {"to": [{"name": "Bob", "address": recipient}], "subject": "Weekly report",
                       "text": TEXT, "html": HTML,
                       "attachments": [{"filename": "report.pdf", "content": base64.b64encode(ATTACHMENT).decode()}]}
        api_call_times: list[float] = []

        def send_api() -> None:
            started = time.perf_counter()
            call(f"/v1/account/{account}/submit", submit_body)
            api_call_times.append(time.perf_counter() - started)

        def same_message() -> tuple[str, list[str], bytes]:
            composed = compose(OutgoingMessage(
                sender=Mailbox("Ann Sender", sender), to=(Mailbox("Bob", recipient),), subject="Weekly report",
                text=TEXT, html=HTML, attachments=(AttachmentSpec(ATTACHMENT, "application/pdf", "report.pdf"),)),
                text_from_html=html_to_text)
            return composed.envelope.mail_from, list(composed.envelope.recipients), composed.raw

        context = ssl.create_default_context(cafile=str(stack.pki.ca_file))

        def open_smtp() -> smtplib.SMTP:
            session = smtplib.SMTP("localhost", stack.postfix.smtp_port, timeout=10)
            session.starttls(context=context)
            session.login(sender, sender_password)
            return session

        def send_smtplib() -> None:
            mail_from, rcpts, raw = same_message()
            session = open_smtp()
            session.sendmail(mail_from, rcpts, raw)
            session.quit()

        warm_session = open_smtp()
        tuned_session = open_smtp()
        tuned_session.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send_smtplib_warm() -> None:
            mail_from, rcpts, raw = same_message()
            warm_session.sendmail(mail_from, rcpts, raw)

        def send_smtplib_tuned() -> None:
            mail_from, rcpts, raw = same_message()
            tuned_session.sendmail(mail_from, rcpts, raw)

        watcher = InboxWatcher(stack, recipient, recipient_password)
        ways = [("API POST /submit", send_api), ("smtplib, new session", send_smtplib),
                ("smtplib, warm session", send_smtplib_warm), ("smtplib, warm + NODELAY", send_smtplib_tuned)]
        for _, send in ways * 3:  # warm-up: pools, Dovecot and Postfix processes, caches
            watcher.time_until_next(send)
        api_call_times.clear()
        samples: dict[str, list[float]] = {name: [] for name, _ in ways}
        for _ in range(args.rounds):
            for name, send in ways:
                samples[name].append(watcher.time_until_next(send))
        warm_session.quit()
        tuned_session.quit()

        print(f"\n{args.rounds} sends each way, alternating; message {len(same_message()[2]):,} bytes "
              "(text + HTML + 30 KB attachment); latency = call start -> visible in the recipient's INBOX\n")
        print(f"{'sender':<25} {'p50':>9} {'p95':>9} {'p50 vs smtplib':>15}")
        baseline = percentile(samples["smtplib, new session"], 0.5)
        for name, _ in ways:
            p50, p95 = percentile(samples[name], 0.5), percentile(samples[name], 0.95)
            print(f"{name:<25} {p50 * 1000:>7.1f}ms {p95 * 1000:>7.1f}ms "
                  f"{(p50 - baseline) * 1000:>+10.1f} ms {p50 / baseline:>5.2f}x")
        api_p50 = percentile(samples["API POST /submit"], 0.5)
        call_p50, call_p95 = percentile(api_call_times, 0.5), percentile(api_call_times, 0.95)
        print(f"\nAPI response time (incl. the Sent copy over IMAP): p50 {call_p50 * 1000:.1f} ms, "
              f"p95 {call_p95 * 1000:.1f} ms")
        verdict = "met" if api_p50 <= baseline + 0.100 else "MISSED"
        print(f"goal: API p50 <= smtplib p50 + 100 ms: {api_p50 * 1000:.1f} ms vs "
              f"{(baseline + 0.100) * 1000:.1f} ms -> {verdict}")


if __name__ == "__main__":
    main()
