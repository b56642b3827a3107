"""What every watched account of one watcher process shares: the event sink, settings, the
lease epochs, the scheduler (pool + multiplexer) and the IMAP/notify plumbing.

Tests and benchmarks replace ``open_connection``, ``describe`` or ``notify_request`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chalicelib.events.publisher import EventSink
from chalicelib.imap.message_content import ContentRequest
from chalicelib.imap.watch import WatchConnection
from chalicelib.imap.watch_snapshot import Describe
from chalicelib.services import notify_content
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from workers.watch.account import AccountWatch


class Scheduler(Protocol):
    def submit(self, task: Callable[[], None]) -> None: ...
    def watch_idle(self, account: AccountWatch, connection: WatchConnection) -> None: ...
    def forget(self, account: AccountWatch) -> None: ...


@dataclass
class WatchContext:
    """What every account of one watcher process shares."""

    sink: EventSink
    settings: Settings
    worker: str
    lease_epoch_of: Callable[[str], int]
    scheduler: Scheduler
    # messageNew data: the mail API's listing entry plus the text/headers notify settings ask for
    describe: Describe = notify_content.message_new_data
    notify_request: Callable[[], ContentRequest] = notify_content.current_request
    open_connection: Callable[..., WatchConnection] = WatchConnection.open
