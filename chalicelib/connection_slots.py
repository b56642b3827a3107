"""What a connection lease is: the value the IMAP pool holds and the refusal it handles.

The API may hold at most N IMAP connections per account across every process; each open
connection holds one *slot* under a lease. Two sides share these types and nothing else:

    chalicelib.imap.pool                 holds a Lease per pooled connection, turns
    (the LeaseBroker protocol)           LeaseUnavailable into 429 TooManyConnections
    chalicelib.store.connection_leases   the DynamoDB broker that grants, renews and
    (DynamoLeaseBroker)                  releases them

They live here, below both, so the IMAP adapter does not import the store (and with it
pynamodb) to name them. A lease's ``expires_at`` is wall-clock epoch seconds because its
holders are different machines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    account: str
    slot: int
    holder: str
    expires_at: float  # epoch seconds


class LeaseUnavailable(Exception):  # noqa: N818 - an outcome, not a fault
    """Every slot of the account is held; ``retry_after`` seconds until one expires at the latest."""

    def __init__(self, account: str, limit: int, retry_after: int) -> None:
        super().__init__(f"all {limit} connection slots of account {account!r} are in use")
        self.account = account
        self.limit = limit
        self.retry_after = retry_after
