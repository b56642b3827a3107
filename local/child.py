"""Entry point every process of ``make run`` starts through, so none outlives the supervisor.

    python -m local.child SUPERVISOR_PID -- COMMAND [ARG...]

On Linux it asks the kernel to send SIGTERM when the supervisor dies
(``prctl(PR_SET_PDEATHSIG)``), checks that the supervisor is still its parent (it may have
died before the request), then replaces itself with COMMAND (``execvp``): the death
signal survives exec, and the pid stays the one the supervisor knows.

This is done here rather than in ``subprocess.Popen(preexec_fn=...)`` because the
supervisor runs threads (moto, the snapshot saver) and Python documents ``preexec_fn`` as
unsafe in threaded programs.

Limits: the signal fires when the supervisor's spawning thread exits, which for the
runner is its main thread, i.e. the process. Elsewhere than Linux there is no such
request: a Ctrl-C still stops everything (the supervisor terminates its children), but a
SIGKILLed supervisor leaves them running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(supervisor_pid: int) -> None:
    """Arrange SIGTERM on the supervisor's death; exit at once if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor_pid:
        raise SystemExit(f"local.child: supervisor {supervisor_pid} is gone; not starting")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        raise SystemExit("usage: python -m local.child SUPERVISOR_PID -- COMMAND [ARG...]")
    die_with_parent(int(args[0]))
    os.execvp(args[2], args[2:])  # noqa: S606 - the supervisor's fixed argument list, no shell wanted


if __name__ == "__main__":
    main()
