"""Checkpoint commits against DynamoDB (moto): calls per commit, conditions, atomicity, chunking."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator

import botocore.client
import pytest

from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store.checkpoints import CheckpointConflictError, MailboxDeletion
from chalicelib.sync.checkpoint import MailboxCheckpoint
from chalicelib.sync.uidset import UidSet

pytestmark = pytest.mark.usefixtures("aws_resources")
FOLDERS = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """Every AWS operation the test's own thread makes, by name.

    Only this thread's: a background thread left by an earlier test in the same process
    (an idle mail connection releasing its lease, say) must not count as a call of the commit.
    """
    calls: Counter = Counter()
    original = botocore.client.BaseClient._make_api_call
    test_thread = threading.get_ident()

    def counting(client, operation_name, params):
        if threading.get_ident() == test_thread:
            calls[operation_name] += 1
        return original(client, operation_name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    yield calls


@pytest.fixture
def account() -> str:
    return f"cp-{secrets.token_hex(4)}"


def baseline(path: str, revision: int = 1, uidnext: int = 4) -> MailboxCheckpoint:
    return MailboxCheckpoint(path=path, uidvalidity=7, uidnext=uidnext, uids=UidSet(range(1, uidnext)),
                             flags={"\\Seen": UidSet([1])}, revision=revision)


def test_a_first_baseline_of_six_folders_and_the_marker_is_one_call(account, aws_calls):
    # Given: an account the watcher has never seen
    # When: its first baseline (six folders) is committed with the account marker
    checkpoint_store.commit(account, 1, [(baseline(path), 0) for path in FOLDERS], mark_initialized=True)
    # Then: one TransactWriteItems wrote all seven items
    assert aws_calls == Counter({"TransactWriteItems": 1})
    loaded = checkpoint_store.load_checkpoints(account)
    assert loaded.initialized
    assert sorted(loaded.mailboxes) == FOLDERS
    assert loaded.mailboxes["INBOX"] == baseline("INBOX")


def test_a_single_checkpoint_is_one_conditional_put(account, aws_calls):
    checkpoint_store.commit(account, 1, [(baseline("INBOX"), 0)])
    assert aws_calls == Counter({"PutItem": 1})


def test_one_stale_revision_refuses_the_whole_commit(account):
    # Given: a stored baseline
    checkpoint_store.commit(account, 1, [(baseline(path), 0) for path in FOLDERS], mark_initialized=True)
    # When: a commit moves INBOX from revision 1 but Sent from a revision it never had
    stale = [(baseline("INBOX", revision=2, uidnext=9), 1), (baseline("Sent", revision=5, uidnext=9), 4)]
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.commit(account, 1, stale)
    # Then: nothing of it landed, not even the INBOX write whose own condition held
    stored = checkpoint_store.load_checkpoints(account).mailboxes
    assert stored["INBOX"].revision == 1 and stored["Sent"].revision == 1


def test_a_holder_of_an_older_lease_epoch_cannot_write_after_a_newer_one(account):
    # Given: the new lease holder (epoch 3) wrote INBOX and Sent
    checkpoint_store.commit(account, 3, [(baseline("INBOX"), 0), (baseline("Sent"), 0)])
    # When: a paused old holder (epoch 2) tries to move both
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.commit(account, 2, [(baseline("INBOX", 2, 9), 1), (baseline("Sent", 2, 9), 1)])
    # Then: the stored checkpoints are the new holder's
    assert {c.revision for c in checkpoint_store.load_checkpoints(account).mailboxes.values()} == {1}


def test_a_first_write_never_overwrites_a_checkpoint_someone_else_created(account):
    checkpoint_store.commit(account, 1, [(baseline("INBOX", uidnext=20), 0)])
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.commit(account, 1, [(baseline("INBOX"), 0), (baseline("Sent"), 0)])
    assert set(checkpoint_store.load_checkpoints(account).mailboxes) == {"INBOX"}


def test_writes_and_deletions_commit_together(account, aws_calls):
    checkpoint_store.commit(account, 1, [(baseline("INBOX"), 0), (baseline("Old"), 0)])
    aws_calls.clear()
    checkpoint_store.commit(account, 1, [(baseline("INBOX", 2, 9), 1)], [MailboxDeletion("Old", 1)])
    assert aws_calls == Counter({"TransactWriteItems": 1})
    stored = checkpoint_store.load_checkpoints(account).mailboxes
    assert set(stored) == {"INBOX"} and stored["INBOX"].uidnext == 9


def test_more_folders_than_one_transaction_holds_go_in_order_with_the_marker_last(account, aws_calls):
    # Given: an account with 150 folders (DynamoDB takes 100 items per transaction)
    paths = [f"Folder{n:03d}" for n in range(150)]
    # When: its baseline is committed
    checkpoint_store.commit(account, 1, [(baseline(path), 0) for path in paths], mark_initialized=True)
    # Then: two transactions, and everything (the marker too) is stored
    assert aws_calls == Counter({"TransactWriteItems": 2})
    loaded = checkpoint_store.load_checkpoints(account)
    assert loaded.initialized and sorted(loaded.mailboxes) == paths


def test_a_later_write_of_the_same_folder_in_one_commit_supersedes_the_earlier(account):
    checkpoint_store.commit(account, 1, [(baseline("INBOX", uidnext=4), 0), (baseline("Sent"), 0),
                                         (baseline("INBOX", uidnext=6), 0)])
    assert checkpoint_store.load_checkpoints(account).mailboxes["INBOX"].uidnext == 6
