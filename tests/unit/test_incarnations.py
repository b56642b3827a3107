"""Account incarnations in event ids: a re-registered id never repeats an id of its first life,
and accounts stored before incarnations existed keep the ids they always had."""

from __future__ import annotations

import re

import pytest

from chalicelib.events.model import event_id
from chalicelib.incarnations import LEGACY, new_incarnation, scoped
from chalicelib.schemas.common import ACCOUNT_ID_PATTERN
from chalicelib.sync.account_state import LoginOutcome, initialized_event, transition_event
from chalicelib.sync.checkpoint import MailboxCheckpoint, MessageState
from chalicelib.sync.mailboxes import ListedMailbox, mailbox_deleted_event, mailbox_new_event
from chalicelib.sync.reconcile import MailboxSnapshot, reconcile_mailbox
from chalicelib.sync.uidset import UidSet

BASE = MailboxCheckpoint(path="INBOX", uidvalidity=7, uidnext=3, highestmodseq=10, uids=UidSet([1, 2]),
                         flags={}, labels={}, revision=3)
CHANGES = MailboxSnapshot("INBOX", 7, 4, 11, {1: MessageState(frozenset({"\\Seen"}), None), 3: MessageState(
    frozenset(), None)}, vanished=UidSet([2]), listings={3: {"subject": "s", "size": 1}})


def every_event_id(incarnation: str) -> list[str]:
    """The id of one event of every kind the watcher builds, for account "acct"."""
    kwargs = {"incarnation": incarnation}
    ids = [initialized_event("acct", **kwargs).id,
           transition_event("acct", "new", 1, LoginOutcome(ok=True, user="u"), **kwargs).id,
           transition_event("acct", "connected", 2, LoginOutcome(ok=False, code="AuthenticationFailed"), **kwargs).id,
           mailbox_new_event("acct", ListedMailbox("Work", "/"), 5, **kwargs).id,
           mailbox_deleted_event("acct", "Work", "/", 5, **kwargs).id]
    ids += [e.id for e in reconcile_mailbox("acct", BASE, CHANGES, **kwargs).events]
    reset = MailboxSnapshot("INBOX", 8, 1, 1, {}, present=UidSet())
    ids += [e.id for e in reconcile_mailbox("acct", BASE, reset, **kwargs).events]
    return ids


def test_a_legacy_account_keeps_the_ids_it_always_had():
    # Given an account stored before incarnations (none on its record)
    # Then its ids are the ones released versions published (pinned), so nothing is re-sent
    assert scoped("acct", LEGACY) == "acct"
    assert initialized_event("acct").id == "evt_038ed40bb5344db473368fb24f8a172e"
    assert transition_event("acct", "new", 1, LoginOutcome(ok=True, user="u")).id \
        == "evt_33ac581181d9870656aa05d654362b61"
    assert every_event_id(LEGACY)[0] == event_id("acct", "accountInitialized")


def test_two_lives_of_an_id_share_no_event_id_and_one_life_repeats_its_own():
    first, second = new_incarnation(), new_incarnation()
    assert first != second
    ids_first, ids_second = every_event_id(first), every_event_id(second)
    assert len(ids_first) == 9 and len(set(ids_first)) == 9
    assert not set(ids_first) & set(ids_second)
    assert not set(ids_first) & set(every_event_id(LEGACY))
    assert every_event_id(first) == ids_first  # deterministic within one life (restarts, hand-overs)


@pytest.mark.parametrize("account", ["a", "acc_0123", "x.y-z"])
def test_a_scoped_key_is_never_another_accounts_bare_id(account):
    assert not re.match(ACCOUNT_ID_PATTERN, scoped(account, new_incarnation()))
