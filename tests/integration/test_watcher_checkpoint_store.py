"""Checkpoint commits against DynamoDB (moto): calls per commit, conditions, atomicity, chunking."""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
from collections import Counter
from collections.abc import Iterator

import botocore.client
import pytest

from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store.checkpoints import PART_SUFFIX, CheckpointConflictError, CheckpointItem, MailboxDeletion
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
    # (one query per deleted mailbox finds its parts, to delete them with it)
    assert aws_calls == Counter({"TransactWriteItems": 1, "Query": 1})
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


def huge_mailbox(revision: int = 1, seed: int = 11) -> MailboxCheckpoint:
    """1M messages, half \\Seen and three labels scattered at random: ~610 KB compressed."""
    rng = random.Random(seed)
    uids = range(1, 1_000_001)
    seen = UidSet(uid for uid in uids if rng.random() < 0.5)
    labels = {name: UidSet(uid for uid in uids if rng.random() < 0.3) for name in ("Work", "Family", "Receipts")}
    return MailboxCheckpoint(path="INBOX", uidvalidity=7, uidnext=1_000_001, uids=UidSet(uids),
                             flags={"\\Seen": seen}, labels=labels, revision=revision)


def test_a_checkpoint_over_the_item_limit_is_stored_in_parts_and_loads_equal(account, aws_calls):
    # Given: a 1M-message mailbox whose blob is over DynamoDB's 400 KB item limit
    huge = huge_mailbox()
    assert len(huge.encode_sets()) > 400_000
    # When: it is committed
    checkpoint_store.commit(account, 1, [(huge, 0)])
    # Then: one transaction wrote it, and it loads back equal
    assert aws_calls == Counter({"TransactWriteItems": 1})
    assert checkpoint_store.load_checkpoints(account).mailboxes["INBOX"] == huge


def test_a_checkpoint_in_parts_moves_to_its_next_revision_and_back_to_one_item(account):
    # Given: a stored 1M-message checkpoint in parts
    checkpoint_store.commit(account, 1, [(huge_mailbox(), 0)])
    # When: it moves on (other flags everywhere), then shrinks to a small one
    moved = huge_mailbox(revision=2, seed=12)
    checkpoint_store.commit(account, 1, [(moved, 1)])
    assert checkpoint_store.load_checkpoints(account).mailboxes["INBOX"] == moved
    checkpoint_store.commit(account, 1, [(baseline("INBOX", revision=3), 2)])
    # Then: the small one loads as itself (the leftover parts of revision 2 do not count)
    assert checkpoint_store.load_checkpoints(account).mailboxes["INBOX"] == baseline("INBOX", revision=3)
    # And: a stale writer of the large one is refused as a conflict
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.commit(account, 1, [(huge_mailbox(revision=3), 2)])


def test_parts_of_another_revision_are_a_conflict_never_a_smaller_checkpoint(account):
    # Given: a stored checkpoint in parts, whose second part is then replaced by one of
    # another revision (as a torn, non-transactional write would leave it)
    checkpoint_store.commit(account, 1, [(huge_mailbox(), 0)])
    part = CheckpointItem.get(account, f"INBOX{PART_SUFFIX}1", consistent_read=True)
    part.revision = 5
    part.save()
    # When/Then: loading it is a conflict
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.load_checkpoints(account)
    # And: so is a missing part
    part.delete()
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.load_checkpoints(account)


def test_deleting_an_account_removes_the_parts_too(account):
    checkpoint_store.commit(account, 1, [(huge_mailbox(), 0)])
    assert checkpoint_store.delete_account_checkpoints(account) == 2
    assert list(CheckpointItem.query(account)) == []


def test_deleting_a_mailbox_removes_its_parts_too(account):
    # Given: two mailboxes stored in parts
    huge = huge_mailbox()
    checkpoint_store.commit(account, 1, [(huge, 0), (dataclasses.replace(huge, path="Archive"), 0)])
    # When: INBOX is deleted
    checkpoint_store.commit(account, 1, [], [MailboxDeletion("INBOX", 1)])
    # Then: no item of INBOX is left; Archive's parts are untouched
    paths = sorted(item.path for item in CheckpointItem.query(account))
    assert paths == ["Archive", f"Archive{PART_SUFFIX}1"]
    assert set(checkpoint_store.load_checkpoints(account).mailboxes) == {"Archive"}
