"""The SMTP pool and one transaction's outcome, against a scripted fake server (pure)."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

import pytest

from chalicelib.errors import MailServerError
from chalicelib.security.transport import MailServer
from chalicelib.services.send_attempts import retry_delay_seconds
from chalicelib.smtp import providers
from chalicelib.smtp.compose import Envelope
from chalicelib.smtp.delivery import DeliveryFailure, deliver, failure_from_connect_error
from chalicelib.smtp.pool import SmtpLogin, SmtpPool

SERVER = MailServer(host="smtp.example.com", port=587, secure=False, user="ann@example.com")
LOGIN = SmtpLogin.direct(SERVER, "pw")
ENVELOPE = Envelope("ann@example.com", ("a@example.com", "b@example.com"))


class FakeSocket:
    def __init__(self) -> None:
        self.timeout = 20.0

    def settimeout(self, value: float) -> None:
        self.timeout = value

    def gettimeout(self) -> float:
        return self.timeout


@dataclass
class FakeSMTP:
    """Answers like a server would; records the commands it got."""

    rcpt_replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    mail_reply: tuple[int, bytes] = (250, b"2.1.0 Ok")
    data_reply: tuple[int, bytes] = (250, b"2.0.0 Ok: queued as ABC")
    rset_fails: bool = False
    features: dict[str, str] = field(default_factory=lambda: {"size": "10240000", "8bitmime": ""})
    disconnect_at: str | None = None
    commands: list[str] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self.sock = FakeSocket()
        self.esmtp_features = self.features

    def has_extn(self, name: str) -> bool:
        return name.lower() in self.esmtp_features

    def _maybe_drop(self, command: str) -> None:
        self.commands.append(command)
        if self.disconnect_at == command:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    def mail(self, sender: str, options: list[str]) -> tuple[int, bytes]:
        self._maybe_drop("MAIL")
        self.commands[-1] = f"MAIL {sender} {' '.join(options)}".strip()
        return self.mail_reply

    def rcpt(self, recipient: str) -> tuple[int, bytes]:
        self._maybe_drop("RCPT")
        return self.rcpt_replies.get(recipient, (250, b"2.1.5 Ok"))

    def data(self, raw: bytes) -> tuple[int, bytes]:
        self._maybe_drop("DATA")
        return self.data_reply

    def rset(self) -> tuple[int, bytes]:
        self.commands.append("RSET")
        if self.rset_fails:
            raise smtplib.SMTPServerDisconnected("gone")
        return 250, b"2.0.0 Ok"

    def quit(self) -> None:
        self.commands.append("QUIT")
        self.closed = True

    def close(self) -> None:
        self.closed = True


class Connector:
    def __init__(self, *servers: FakeSMTP) -> None:
        self.queue = list(servers)
        self.opened: list[FakeSMTP] = []

    def __call__(self, server: MailServer, password: str) -> FakeSMTP:
        client = self.queue.pop(0) if self.queue else FakeSMTP()
        self.opened.append(client)
        return client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_with(*servers: FakeSMTP, idle: float = 60.0) -> tuple[SmtpPool, Connector, Clock]:
    connector, clock = Connector(*servers), Clock()
    return SmtpPool(max_idle_seconds=idle, connect=connector, clock=clock), connector, clock


class TestPool:
    def test_a_warm_session_is_reused_after_a_successful_rset(self):
        pool, connector, _ = pool_with()
        deliver(LOGIN, ENVELOPE, b"m1", pool=pool)
        deliver(LOGIN, ENVELOPE, b"m2", pool=pool)
        assert len(connector.opened) == 1
        assert connector.opened[0].commands.count("RSET") == 1

    def test_sessions_idle_too_long_are_closed_not_probed(self):
        pool, connector, clock = pool_with()
        deliver(LOGIN, ENVELOPE, b"m1", pool=pool)
        clock.now += 61
        deliver(LOGIN, ENVELOPE, b"m2", pool=pool)
        assert len(connector.opened) == 2
        assert connector.opened[0].closed and "RSET" not in connector.opened[0].commands

    def test_a_dead_session_is_replaced(self):
        pool, connector, _ = pool_with(FakeSMTP(rset_fails=True))
        deliver(LOGIN, ENVELOPE, b"m1", pool=pool)
        deliver(LOGIN, ENVELOPE, b"m2", pool=pool)
        assert len(connector.opened) == 2 and connector.opened[0].closed

    def test_another_password_or_user_never_reuses_a_session(self):
        pool, connector, _ = pool_with()
        deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        deliver(SmtpLogin.direct(SERVER, "new-password"), ENVELOPE, b"m", pool=pool)
        deliver(SmtpLogin.direct(MailServer(SERVER.host, SERVER.port, SERVER.secure, "bob@example.com"), "pw"),
                ENVELOPE, b"m", pool=pool)
        assert len(connector.opened) == 3

    def test_pooling_off_closes_after_each_message(self):
        pool, connector, _ = pool_with(idle=0)
        deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        assert connector.opened[0].commands[-1] == "QUIT" and pool.idle_count() == 0

    def test_a_session_that_failed_is_never_returned(self):
        pool, connector, _ = pool_with(FakeSMTP(mail_reply=(451, b"4.3.0 busy")))
        with pytest.raises(DeliveryFailure):
            deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        assert pool.idle_count() == 0 and connector.opened[0].closed


class TestOutcomes:
    def test_accepted_deferred_and_rejected_recipients_are_told_apart(self):
        server = FakeSMTP(rcpt_replies={"b@example.com": (550, b"5.1.1 unknown"),
                                        "c@example.com": (452, b"4.2.2 mailbox full")})
        pool, _, _ = pool_with(server)
        result = deliver(LOGIN, Envelope("ann@example.com", ("a@example.com", "b@example.com",
                                                                    "c@example.com")), b"m", pool=pool)
        assert result.response == "250 2.0.0 Ok: queued as ABC"
        assert result.accepted == ("a@example.com",)
        assert result.rejected == {"b@example.com": "550 5.1.1 unknown"}
        assert result.deferred == {"c@example.com": "452 4.2.2 mailbox full"}

    @pytest.mark.parametrize(("replies", "code", "temporary"), [
        ({"a@example.com": (550, b"no"), "b@example.com": (550, b"no")}, "RecipientsRejected", False),
        ({"a@example.com": (550, b"no"), "b@example.com": (451, b"later")}, "RecipientsDeferred", True),
    ])
    def test_nobody_accepted_is_temporary_if_anyone_was_deferred(self, replies, code, temporary):
        pool, _, _ = pool_with(FakeSMTP(rcpt_replies=replies))
        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        assert (failure.value.code, failure.value.temporary) == (code, temporary)
        assert set(failure.value.recipients) == {"a@example.com", "b@example.com"}

    @pytest.mark.parametrize(("stage", "reply", "temporary"), [
        ("mail", (451, b"4.3.0 try later"), True), ("mail", (553, b"5.7.1 not your address"), False),
        ("data", (452, b"4.3.1 no space"), True), ("data", (554, b"5.7.1 spam"), False),
    ])
    def test_mail_and_data_replies_classify_by_their_first_digit(self, stage, reply, temporary):
        pool, _, _ = pool_with(FakeSMTP(**{f"{stage}_reply": reply}))
        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        assert failure.value.temporary is temporary
        assert failure.value.server_response == f"{reply[0]} {reply[1].decode()}"

    def test_smtputf8_and_size_are_checked_before_mail_from(self):
        pool, connector, _ = pool_with(FakeSMTP(features={"size": "100"}), FakeSMTP(features={"size": "100"}))
        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, Envelope("ann@example.com", ("jörg@example.com",), smtputf8=True), b"m", pool=pool)
        assert failure.value.code == "SMTPUTF8Unsupported" and not failure.value.temporary
        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, ENVELOPE, b"x" * 101, pool=pool)
        assert failure.value.code == "MessageTooLarge"
        assert not any(c.startswith("MAIL") for server in connector.opened for c in server.commands)

    def test_mail_from_declares_size_smtputf8_and_8bitmime(self):
        server = FakeSMTP(features={"size": "0", "8bitmime": "", "smtputf8": ""})
        pool, _, _ = pool_with(server)
        deliver(LOGIN, Envelope("jö@example.com", ("a@example.com",), smtputf8=True), b"abc", pool=pool)
        assert server.commands[0] == "MAIL jö@example.com SIZE=3 SMTPUTF8 BODY=8BITMIME"

    def test_a_stale_pooled_session_is_retried_once_on_a_fresh_one(self):
        stale = FakeSMTP()
        pool, connector, _ = pool_with(stale)
        deliver(LOGIN, ENVELOPE, b"m1", pool=pool)
        stale.disconnect_at = "MAIL"  # the server dropped the idle session; RSET did not notice
        result = deliver(LOGIN, ENVELOPE, b"m2", pool=pool)
        assert result.accepted == ENVELOPE.recipients and len(connector.opened) == 2

    def test_a_connection_lost_during_data_is_not_retried_at_once(self):
        # The server may already have the message: the outbox retries later instead.
        pool, connector, _ = pool_with(FakeSMTP(disconnect_at="DATA"))
        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, ENVELOPE, b"m", pool=pool)
        assert failure.value.temporary and failure.value.stage == "DATA" and len(connector.opened) == 1

    @pytest.mark.parametrize(("code", "response", "temporary"), [
        ("ConnectionRefused", None, True), ("ConnectionTimeout", None, True), ("ServiceNotAvailable", "421 busy", True),
        ("AuthenticationFailed", "535 5.7.8 bad credentials", False),
        ("AuthenticationFailed", "454 4.7.0 temporary auth failure", True), ("TLSError", None, False),
    ])
    def test_connect_failures_are_temporary_unless_they_are_about_configuration(self, code, response, temporary):
        def refuse(server: MailServer, password: str) -> FakeSMTP:
            raise MailServerError("failed", code=code, protocol="smtp", server_response=response)

        with pytest.raises(DeliveryFailure) as failure:
            deliver(LOGIN, ENVELOPE, b"m", pool=SmtpPool(max_idle_seconds=60, connect=refuse))
        assert (failure.value.code, failure.value.temporary) == (code, temporary)


@pytest.mark.parametrize(("attempts", "jitter", "expected"), [
    (1, 0.5, 30.0), (2, 0.5, 60.0), (3, 0.0, 96.0), (3, 1.0, 144.0), (10, 0.5, 3600.0), (10, 1.0, 3600.0),
])
def test_retry_delays_double_with_jitter_up_to_the_cap(attempts, jitter, expected):
    assert retry_delay_seconds(attempts, base=30, maximum=3600, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(("host", "stores"), [
    ("smtp.gmail.com", True), ("SMTP.Office365.com.", True), ("smtp-mail.outlook.com", True),
    ("smtp.fastmail.com", False), ("localhost", False)])
def test_providers_that_file_sent_mail_themselves_are_recognized(host, stores):
    assert providers.stores_sent_copy(host) is stores


@pytest.mark.parametrize(("code", "server_response", "temporary"), [
    # An OAuth2 token endpoint that did not answer: no SMTP reply at all, still temporary.
    ("AuthenticationUnavailable", "temporarily_unavailable", True),
    ("AuthenticationUnavailable", "454 4.7.0 Temporary authentication failure", True),
    ("OAuthTokenRevoked", "invalid_grant: Token has been expired or revoked.", False),
    ("AuthenticationFailed", "535 5.7.8 Authentication failed", False),
])
def test_a_login_failure_before_the_transaction_is_temporary_only_when_it_says_so(code, server_response, temporary):
    failure = failure_from_connect_error(MailServerError("login failed", code=code, protocol="smtp",
                                                         server_response=server_response))
    assert (failure.code, failure.temporary) == (code, temporary)
