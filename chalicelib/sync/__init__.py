"""Pure change detection: compact UID sets, checkpoints, reconciliation, state transitions.

Nothing in this package opens a socket or talks to AWS; the IMAP adapter
(:mod:`chalicelib.imap.watch`) feeds it snapshots and the watcher publishes what it returns.
"""
