"""The Capabilities value: parsed once from the server's CAPABILITY answer, asked in one way."""

from __future__ import annotations

from chalicelib.imap.capabilities import Capabilities, shared_capabilities


def test_parsed_from_the_raw_answer_case_insensitively():
    # Given: a CAPABILITY answer as imapclient hands it over (bytes, server's own case)
    caps = Capabilities.parse([b"IMAP4rev1", b"Move", b"SPECIAL-USE", b"esearch", b"IDLE", b"X-GM-EXT-1"])
    # Then: every name is asked the same way
    assert caps.imap4rev1 and caps.move and caps.special_use and caps.esearch and caps.idle and caps.gmail
    assert caps.has("move") and "ESEARCH" in caps and "NOTIFY" not in caps
    assert not (caps.notify or caps.condstore or caps.qresync or caps.xlist or caps.uidplus)


def test_qresync_implies_condstore():
    # RFC 7162 3.2.3: a server announcing QRESYNC supports CONDSTORE even if it does not say so
    caps = Capabilities.parse([b"IMAP4rev1", b"QRESYNC"])
    assert caps.qresync and caps.condstore and not caps.has("CONDSTORE")


def test_equal_lists_share_one_instance():
    # Thousands of watcher connections to one server keep one copy of its capabilities
    first = shared_capabilities(Capabilities.parse([b"IMAP4rev1", b"IDLE", b"NOTIFY"]))
    second = shared_capabilities(Capabilities.parse([b"IDLE", b"NOTIFY", b"imap4rev1"]))
    assert first is second
