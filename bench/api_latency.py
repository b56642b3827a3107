"""Latency of the mail API against the same IMAP work done by a persistent connection.

    .venv/bin/python bench/api_latency.py [--messages 10000] [--rounds 300]

Starts its own Dovecot (temp dir, loopback) and moto server, fills one mailbox with
10,000 messages (MULTIAPPEND in batches over one connection; the fill time is printed),
registers the account, then measures p50/p95 of four operations:

    list     GET  /messages?pageSize=20&page=<random>       EXAMINE + FETCH 20 by sequence number
    newest   the same, always page 0 (a client polling its inbox; decoded entries are reused)
    fetch    GET  /message/{id}                             EXAMINE + UID FETCH header/structure + text parts
    search   POST /search {subject: <word>} pageSize=20     EXAMINE + UID SEARCH + UID FETCH 20
    flags    PUT  /message/{id} {flags: {add|delete}}       SELECT + UID FETCH FLAGS + UID STORE

API side: the Chalice app in-process through ``chalice.test.Client`` (routing, token check,
validation, account lookup, pooled connection, MIME decoding, JSON), with a warm pooled
connection. Baseline: one imapclient connection opened before the run, sending exactly the
same IMAP commands for the same messages and parsing the answers with imapclient, nothing
more. Both sides use STARTTLS to the same Dovecot and get the same random pages and
messages; each round first warms Dovecot's cache for that page or message with an untimed
call, then times both sides in alternating order. The ratio is API / baseline; the goal
is p50 <= 1.5x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.support.aws as test_aws  # noqa: E402 - sets the AWS environment before chalicelib is imported

WORDS = ("invoice", "meeting", "report", "update", "holiday", "project", "budget", "review", "launch", "Grüße")
SUBJECT_WORD = "quarterly"  # in about 1% of subjects


def build_messages(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    messages = []
    for index in range(count):
        message = EmailMessage()
        name = rng.choice(("Alice", "Bob", "Chloé", "Dmitri", "Erin", "Fumiko"))
        message["From"] = f"{name} <{name.lower()}@example.test>"
        message["To"] = "Bench User <bench@example.test>"
        words = rng.sample(WORDS, 3) + ([SUBJECT_WORD] if index % 97 == 0 else [])
        message["Subject"] = f"{' '.join(words)} #{index}"
        message["Date"] = format_datetime(start + timedelta(minutes=37 * index))
        message["Message-ID"] = f"<bench-{index}@example.test>"
        paragraph = " ".join(rng.choice(WORDS) for _ in range(120))
        message.set_content(f"Hello,\n\n{paragraph}\n\nRegards,\n{name}\n")
        message.add_alternative(f"<html><body><p>Hello,</p><p>{paragraph}</p><p>{name}</p></body></html>",
                                subtype="html")
        if index % 5 == 0:
            message.add_attachment(rng.randbytes(3000), maintype="application", subtype="pdf",
                                   filename=f"document-{index}.pdf")
        messages.append(message.as_bytes(policy=policy.SMTP))
    return messages


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Stack:
    """Dovecot + moto + the API, started for the run and always stopped."""

    def __init__(self) -> None:
        from tests.support.certs import make_test_pki
        from tests.support.mailservers import Dovecot

        self.workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
        self.pki = make_test_pki(self.workdir / "pki")
        os.environ["SSL_CERT_FILE"] = str(self.pki.ca_file)
        self.dovecot = Dovecot(self.pki)
        self.moto = None

    def __enter__(self) -> Stack:
        import logging

        from moto.server import ThreadedMotoServer

        self.dovecot.start()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=test_aws.MOTO_PORT, verbose=False)
        self.moto.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from chalicelib.services import mail_sessions

        mail_sessions.reset_pool()
        if self.moto is not None:
            self.moto.stop()
        self.dovecot.stop()


def setup_aws() -> str:
    import boto3

    from chalicelib.services.tokens import register_token
    from local.resources import create_resources

    create_resources(ROOT / "template.yaml", stack_name="imapless", endpoint_url=test_aws.MOTO_ENDPOINT,
                     region=test_aws.REGION)
    kms = boto3.client("kms", region_name=test_aws.REGION, endpoint_url=test_aws.MOTO_ENDPOINT)
    key_id = kms.create_key(Description="bench")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/imapless", TargetKeyId=key_id)
    token = "bench-" + secrets.token_hex(16)
    register_token(token, description="bench", scopes=["*"])
    return token


def measure_lease_costs(rounds: int = 100) -> dict[str, list[float]]:
    """What the distributed semaphore costs per acquisition, renewal and release."""
    from chalicelib.store.connection_leases import DynamoLeaseBroker

    broker = DynamoLeaseBroker()
    costs: dict[str, list[float]] = {"acquire": [], "renew": [], "release": []}
    for index in range(rounds):
        started = time.perf_counter()
        lease = broker.acquire("lease-bench", f"bench/{index}", limit=3, ttl_seconds=60, wait_seconds=0)
        costs["acquire"].append(time.perf_counter() - started)
        started = time.perf_counter()
        lease = broker.renew(lease, ttl_seconds=60)
        costs["renew"].append(time.perf_counter() - started)
        started = time.perf_counter()
        broker.release(lease)
        costs["release"].append(time.perf_counter() - started)
    return costs


def fill_mailbox(client, messages: list[bytes], batch: int = 250) -> float:
    started = time.perf_counter()
    for offset in range(0, len(messages), batch):
        client.multiappend("INBOX", messages[offset:offset + batch])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--profile", metavar="OPERATION", help="profile the API side of one operation "
                        "(list, fetch, search, flags) with pyinstrument instead of measuring")
    args = parser.parse_args()
    # Powertools writes one metrics line (EMF) per request to stdout; the table goes to the
    # real stdout, the metrics lines to /dev/null.
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")

    def report(*values: object) -> None:
        print(*values, file=real_stdout, flush=True)

    import ssl

    from chalice.test import Client
    from imapclient import IMAPClient

    from app import app
    from chalicelib.imap.messages import BASE_ITEMS, SUMMARY_HEADER_ITEM
    from chalicelib.mime.structure import parse_bodystructure

    with Stack() as stack:
        user, password = "bench@example.test", secrets.token_urlsafe(12)
        stack.dovecot.add_user(user, password)
        token = setup_aws()

        context = ssl.create_default_context(cafile=str(stack.pki.ca_file))
        baseline = IMAPClient("localhost", port=stack.dovecot.imap_port, ssl=False, timeout=30)
        baseline.starttls(context)
        baseline.login(user, password)

        messages = build_messages(args.messages)
        fill_seconds = fill_mailbox(baseline, messages)
        report(f"filled INBOX with {len(messages):,} messages "
              f"({sum(map(len, messages)) / 1e6:.1f} MB) in {fill_seconds:.1f} s (MULTIAPPEND, batches of 250)")

        client = Client(app, stage_name="local")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(method: str, path: str, body: dict | None = None) -> bytes:
            """One API request; the response body as received (parsing it is the client's time)."""
            response = getattr(client.http, method)(path, headers=headers,
                                                    body=json.dumps(body) if body is not None else None)
            if response.status_code != 200:
                raise SystemExit(f"{method.upper()} {path} -> {response.status_code}: {response.body[:300]!r}")
            return response.body

        account = json.loads(call("post", "/v1/account", {
            "account": "bench", "email": user,
            "imap": {"host": "localhost", "port": stack.dovecot.imap_port, "secure": False,
                     "auth": {"user": user, "pass": password}}}))["account"]
        base = f"/v1/account/{account}"
        first_page = json.loads(call("get", f"{base}/messages?pageSize=20"))
        uid_validity_id = first_page["messages"][0]["id"]
        capabilities = {c.decode().upper() for c in baseline.capabilities()}
        items = [*BASE_ITEMS, SUMMARY_HEADER_ITEM] + (["PREVIEW"] if "PREVIEW" in capabilities else [])
        full_items = [*BASE_ITEMS, "BODY.PEEK[HEADER]"] + (["PREVIEW"] if "PREVIEW" in capabilities else [])
        total = len(messages)
        rng = random.Random(11)

        from chalicelib.message_ids import MessageRef, decode_message_id, encode_message_id

        uid_validity = decode_message_id(uid_validity_id).uid_validity

        # -- the baseline: the same IMAP commands on a persistent connection ----------------
        def baseline_list(page: int) -> None:
            baseline.select_folder("INBOX", readonly=True)
            newest = total - page * 20
            baseline.use_uid = False
            try:
                baseline.fetch(list(range(max(1, newest - 19), newest + 1)), items)
            finally:
                baseline.use_uid = True

        def baseline_fetch(uid: int) -> None:
            baseline.select_folder("INBOX", readonly=True)
            answer = baseline.fetch([uid], full_items)
            structure = parse_bodystructure(answer[uid][b"BODYSTRUCTURE"])
            parts = [ref.part for ref in structure.text.plain + structure.text.html]
            baseline.fetch([uid], [f"BODY.PEEK[{part}]" for part in parts])

        def baseline_search(_: int) -> None:
            baseline.select_folder("INBOX", readonly=True)
            uids = baseline.search(["SUBJECT", SUBJECT_WORD])
            baseline.fetch(sorted(uids, reverse=True)[:20], items)

        def baseline_flags(uid: int) -> None:
            baseline.select_folder("INBOX")
            flags = baseline.get_flags([uid])[uid]
            if b"\\Flagged" in flags:
                baseline.remove_flags([uid], [b"\\Flagged"])
            else:
                baseline.add_flags([uid], [b"\\Flagged"])

        # -- the API -----------------------------------------------------------------------
        def message_id(uid: int) -> str:
            return encode_message_id(MessageRef("INBOX", uid_validity, uid))

        flagged: set[int] = set()

        def api_list(page: int) -> None:
            call("get", f"{base}/messages?pageSize=20&page={page}")

        def api_fetch(uid: int) -> None:
            call("get", f"{base}/message/{message_id(uid)}")

        def api_search(_: int) -> None:
            call("post", f"{base}/search?path=INBOX&pageSize=20", {"search": {"subject": SUBJECT_WORD}})

        def api_flags(uid: int) -> None:
            change = "delete" if uid in flagged else "add"
            call("put", f"{base}/message/{message_id(uid)}", {"flags": {change: ["\\Flagged"]}})
            flagged.symmetric_difference_update({uid})

        operations: list[tuple[str, Callable[[int], None], Callable[[int], None], Callable[[], int]]] = [
            ("list (pageSize 20)", api_list, baseline_list, lambda: rng.randrange(total // 20)),
            ("list newest page (polling)", api_list, baseline_list, lambda: 0),
            ("fetch one message", api_fetch, baseline_fetch, lambda: rng.randrange(1, total + 1)),
            (f"search subject ({total // 97 + 1} hits)", api_search, baseline_search, lambda: 0),
            ("flag update", api_flags, baseline_flags, lambda: rng.randrange(1, total + 1)),
        ]
        if args.profile:
            from pyinstrument import Profiler

            name, api_op, baseline_op, pick = next(op for op in operations if op[0].startswith(args.profile))
            for _ in range(20):
                api_op(pick())
            if os.environ.get("BENCH_SPLIT"):
                arguments = [pick() for _ in range(args.rounds)]
                for argument in arguments:
                    baseline_op(argument)
                for label, operation in (("baseline", baseline_op), ("api", api_op), ("baseline", baseline_op)):
                    times = []
                    for argument in arguments:
                        started = time.perf_counter()
                        operation(argument)
                        times.append(time.perf_counter() - started)
                    report(label, f"p50 {percentile(times, 0.5) * 1000:.2f} ms")
                return
            if os.environ.get("BENCH_CPROFILE"):
                import cProfile
                import pstats

                profile = cProfile.Profile()
                profile.enable()
                for _ in range(args.rounds):
                    api_op(pick())
                profile.disable()
                pstats.Stats(profile, stream=real_stdout).sort_stats("cumtime").print_stats(45)
                return
            profiler = Profiler(interval=0.0002)
            with profiler:
                for _ in range(args.rounds):
                    api_op(pick())
            report(profiler.output_text(unicode=True, color=False, show_all=False))
            return
        rows = []
        for name, api_op, baseline_op, pick in operations:
            for _ in range(20):  # warm both sides: pooled connection, Dovecot caches
                argument = pick()
                api_op(argument)
                baseline_op(argument)
            api_times, baseline_times = [], []
            for round_number in range(args.rounds):
                argument = pick()
                # Whoever touches a page or message first pays for Dovecot reading it into its
                # cache: an untimed call warms it, then both sides run, in alternating order.
                baseline_op(argument)
                sides = [(baseline_op, baseline_times), (api_op, api_times)]
                for operation, times in sides if round_number % 2 else reversed(sides):
                    started = time.perf_counter()
                    operation(argument)
                    times.append(time.perf_counter() - started)
            rows.append((name, baseline_times, api_times))

        baseline.logout()
        lease_costs = measure_lease_costs()
        report(f"\n{args.rounds} rounds per operation; API = in-process chalice.test.Client, warm pooled connection; "
              "baseline = persistent imapclient connection, same IMAP commands\n")
        report(f"{'operation':<28} {'baseline p50':>12} {'p95':>8} {'API p50':>9} {'p95':>8} "
              f"{'ratio p50':>10} {'ratio p95':>10}")
        for name, baseline_times, api_times in rows:
            b50, b95 = percentile(baseline_times, 0.5), percentile(baseline_times, 0.95)
            a50, a95 = percentile(api_times, 0.5), percentile(api_times, 0.95)
            report(f"{name:<28} {b50 * 1000:>10.2f}ms {b95 * 1000:>6.2f}ms {a50 * 1000:>7.2f}ms {a95 * 1000:>6.2f}ms "
                  f"{a50 / b50:>9.2f}x {a95 / b95:>9.2f}x")
        worst = max(percentile(a, 0.5) / percentile(b, 0.5) for _, b, a in rows)
        report(f"\ngoal: p50 <= 1.5x baseline; worst p50 ratio {worst:.2f}x -> {'met' if worst <= 1.5 else 'MISSED'}")
        report(f"cross-process connection lease (DynamoDB on moto), p50 of {len(lease_costs['acquire'])}: "
              f"acquire {percentile(lease_costs['acquire'], 0.5) * 1000:.2f} ms, "
              f"renew {percentile(lease_costs['renew'], 0.5) * 1000:.2f} ms, "
              f"release {percentile(lease_costs['release'], 0.5) * 1000:.2f} ms "
              "(paid per pooled connection, not per request)")
        report(f"(mean API overhead per call: "
              f"{statistics.mean(statistics.median(a) - statistics.median(b) for _, b, a in rows) * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
