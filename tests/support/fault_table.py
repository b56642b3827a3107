"""pytest plugin: the fault table, one row per injected fault, counted by event id.

A fault test records what it sent (the ids of the events the system emitted or was given)
and what arrived (every id the receiving end saw, repeats included) with
:meth:`FaultTable.record`, which counts duplicates and losses and returns the row for the
test to assert on. At the end of the session the rows are written as a Markdown table to
``fault-table.md`` in pytest's base temporary directory (printed with ``-s`` too)::

    | fault | path | sent | received | duplicates | lost | seconds |

``received`` counts distinct ids that arrived; ``duplicates`` the arrivals beyond the first
of an id; ``lost`` the sent ids that never arrived.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TABLE_FILE = "fault-table.md"


@dataclass(frozen=True)
class FaultRow:
    fault: str
    path: str  # from where to where the events were counted
    sent: int
    received: int
    duplicates: int
    lost: int
    seconds: float  # how long the test's fault scenario took

    def markdown(self) -> str:
        return (f"| {self.fault} | {self.path} | {self.sent} | {self.received} | {self.duplicates} | {self.lost} "
                f"| {self.seconds:.1f} |")


class FaultTable:
    def __init__(self) -> None:
        self.rows: list[FaultRow] = []

    def record(self, fault: str, path: str, sent: Iterable[str], arrived: Iterable[str], seconds: float) -> FaultRow:
        """Count ``arrived`` (every arrival, in any order) against the ``sent`` ids; keep and return the row."""
        sent_ids = set(sent)
        arrivals = Counter(arrived)
        row = FaultRow(fault=fault, path=path, sent=len(sent_ids), received=len(set(arrivals) & sent_ids),
                       duplicates=sum(count - 1 for event_id, count in arrivals.items() if event_id in sent_ids),
                       lost=len(sent_ids - set(arrivals)), seconds=seconds)
        self.rows.append(row)
        return row

    def markdown(self) -> str:
        header = ["| fault | path | sent | received | duplicates | lost | seconds |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        return "\n".join(header + [row.markdown() for row in self.rows]) + "\n"


@pytest.fixture(scope="session")
def fault_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultTable]:
    table = FaultTable()
    yield table
    if table.rows:
        path = Path(tmp_path_factory.getbasetemp()) / TABLE_FILE
        path.write_text(table.markdown())
        print(f"\n{path}:\n{table.markdown()}")
