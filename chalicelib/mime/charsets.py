"""Charset labels and bytes -> text: the one fallback chain every decoder in this package uses.

Owns the mapping from what mail *declares* (``charset=`` labels, encoded-word charsets,
HTML ``<meta charset>``) to Python codecs, and the order in which we try them.

Fallback chain of :func:`decode_bytes` (first that decodes strictly wins)::

    byte-order mark  ->  declared charset (its superset codecs first)  ->  UTF-8
        ->  caller's hint (e.g. the message's body charset)  ->  ISO-2022 escapes sniffed
        ->  charset-normalizer over a short list of mail charsets  ->  windows-1252
        ->  declared (or UTF-8) with errors="replace"           # the only lossy step

One exception to "declared first": when a declared *legacy* charset meets bytes that are
non-ASCII and valid UTF-8, UTF-8 wins. PHP ``mail()`` scripts and web forms label UTF-8
text ``iso-8859-1`` all the time, while legacy text that is also valid UTF-8 by accident is
vanishingly rare beyond a few bytes.

Invariants: nothing here raises on any input; the result says which codec produced the text
and, when the declaration was missing, unknown or wrong, a short ``problem`` string that
callers record as a defect.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import charset_normalizer

# Labels seen in the wild mapped to the codecs to try, in order. Where a label names a
# standard that mailers routinely exceed, the superset comes first.
_CHARSET_ALIASES: dict[str, tuple[str, ...]] = {
    # Outlook Express, Foxmail and many webmails label GBK text "gb2312"; GB18030 decodes all of it.
    "gb2312": ("gb18030",), "gbk": ("gb18030",), "x-gbk": ("gb18030",), "cp936": ("gb18030",),
    "euc-cn": ("gb18030",), "x-euc-cn": ("gb18030",), "chinese": ("gb18030",), "csgb2312": ("gb18030",),
    "hz-gb-2312": ("hz",),
    # Taiwanese Outlook/Foxmail "big5" carries cp950 (euro sign) and HKSCS characters.
    "big5": ("cp950", "big5hkscs"), "x-x-big5": ("cp950", "big5hkscs"), "cn-big5": ("cp950", "big5hkscs"),
    # Japanese Windows mailers send NEC/IBM extensions (circled digits, roman numerals) as Shift_JIS.
    "shift_jis": ("cp932", "shift_jis_2004"), "shift-jis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932",), "sjis": ("cp932",), "ms_kanji": ("cp932",), "windows-31j": ("cp932",),
    "euc-jp": ("euc_jp", "euc_jis_2004"), "x-euc-jp": ("euc_jp", "euc_jis_2004"),
    # ISO-2022-JP from Windows (CP50220/CP50221) carries the same extensions; Python lacks those
    # codecs, the JIS X 0213 and "ext" variants cover most of what appears.
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_2004", "iso2022_jp_ext", "iso2022_jp_2"),
    "csiso2022jp": ("iso2022_jp", "iso2022_jp_2004", "iso2022_jp_ext"),
    # Outlook labels Korean "ks_c_5601-1987"; EUC-KR mail carries UHC (cp949) syllables.
    "ks_c_5601-1987": ("cp949",), "euc-kr": ("cp949",), "ks_c_5601": ("cp949",), "korean": ("cp949",),
    # Browsers and mail clients treat Latin-1 labels as windows-1252 (Outlook's smart quotes).
    "iso-8859-1": ("cp1252", "latin-1"), "latin1": ("cp1252", "latin-1"), "latin-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"), "iso_8859-1": ("cp1252", "latin-1"), "l1": ("cp1252", "latin-1"),
    "iso-8859-9": ("cp1254", "iso8859_9"), "tis-620": ("cp874",), "windows-874": ("cp874",),
    "iso-8859-8-i": ("iso8859_8",), "iso-8859-6-i": ("iso8859_6",),
    # Apple Mail and old Eudora.
    "x-mac-roman": ("mac_roman",), "x-mac-cyrillic": ("mac_cyrillic",), "x-mac-greek": ("mac_greek",),
    "x-mac-ce": ("mac_latin2",), "x-mac-turkish": ("mac_turkish",), "x-mac-icelandic": ("mac_iceland",),
    # Netscape/Exchange spelling of UTF-7.
    "unicode-1-1-utf-7": ("utf-7",), "x-unicode-2-0-utf-7": ("utf-7",),
    "utf8": ("utf-8",), "x-utf8": ("utf-8",), "utf-8": ("utf-8",),
    "x-koi8-r": ("koi8_r",), "koi8": ("koi8_r",),
}
# Labels that carry no information: decode by detection. US-ASCII is one of them: ASCII text
# decodes the same whatever the label, and 8-bit bytes under it prove the label wrong. IMAP
# servers also report "us-ascii" for text parts that declare no charset at all (RFC 2045's
# default), so treating it as "unknown" keeps BODYSTRUCTURE-driven and raw decoding equal.
_NO_INFORMATION = {"", "x-unknown", "unknown", "unknown-8bit", "x-user-defined", "default", "none", "charset",
                   "us", "8bit", "7bit", "binary", "x-binary", "auto", "x-auto",
                   "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us_ascii", "csascii"}
# Python codecs that are not text charsets a mail could mean (or would execute escapes).
_REFUSED_CODECS = {"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "escape_codec"}
# Codecs for which "valid UTF-8 wins" must not apply: they are UTF-8 themselves, or they are
# 7-bit/16-bit encodings whose bytes say nothing about UTF-8.
_NEVER_OVERRIDDEN = ("utf", "iso2022", "hz")
# What charset-normalizer may answer: the charsets real mail uses. Letting it pick among all
# ~90 Python codecs makes short texts come out as KOI8-R read as Shift_JIS or Latin-1 as cp1006.
_DETECTION_CANDIDATES = [
    "utf_8", "cp1252", "iso8859_2", "cp1250", "cp1251", "koi8_r", "iso8859_5", "cp1253", "iso8859_7", "cp1254",
    "cp1255", "cp1256", "cp1257", "cp874", "cp932", "euc_jp", "iso2022_jp", "gb18030", "big5hkscs", "cp949",
    "mac_roman",
]
_ISO2022_ESCAPE = re.compile(rb"\x1b(\$[@B(]|\([BJI]|\$\)C)")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_LABEL_JUNK = " \t\r\n\"';,"


@dataclass(frozen=True)
class DecodedText:
    """Text plus how it was obtained. ``problem`` is None when the declaration was right."""

    text: str
    charset: str
    problem: str | None = None


def clean_charset_label(label: str | bytes | None) -> str:
    """``' "UTF-8"; '`` -> ``'utf-8'``: quotes, separators and RFC 2231 language suffix removed."""
    if label is None:
        return ""
    if isinstance(label, bytes):
        label = label.decode("latin-1")
    label = label.strip(_LABEL_JUNK).lower()
    # RFC 2231 section 5 allows "utf-8*en" in encoded-words.
    return label.split("*", 1)[0].strip(_LABEL_JUNK)


def _python_codec(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def charset_codecs(label: str | bytes | None) -> tuple[str, ...]:
    """The codecs to try for a declared label, best first; ``()`` when it says nothing usable."""
    cleaned = clean_charset_label(label)
    if cleaned in _NO_INFORMATION:
        return ()
    if cleaned in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[cleaned]
    # "windows-1252" / "cp-1252" / "win-1251" spellings Python does not know.
    fixed = re.sub(r"^(?:windows|win|cp|x-cp)[-_ ]?(\d{3,4})$", r"cp\1", cleaned)
    codec = _python_codec(fixed) or _python_codec(cleaned.replace(" ", "-"))
    if codec is None:
        return ()
    return _CHARSET_ALIASES.get(codec, (codec,))


def normalize_charset(label: str | bytes | None) -> str | None:
    """The Python codec a label means (``"utf8"`` -> ``"utf-8"``), or None if unknown or absent."""
    found = charset_codecs(label)
    return found[0] if found else None


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def detect_charset(data: bytes) -> str | None:
    """charset-normalizer's best guess among mail charsets; ties go to windows-1252."""
    try:
        results = charset_normalizer.from_bytes(data, cp_isolation=_DETECTION_CANDIDATES)
    except Exception:  # noqa: BLE001 - a detector bug must not break decoding; we fall back below
        return None
    best = results.best()
    if best is None:
        return None
    # Western European text decodes without "chaos" in several code pages; cp1252 is by far
    # the most common of them in mail, so it wins ties.
    for match in results:
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return "cp1252"
    return best.encoding


def decode_bytes(data: bytes, declared: str | bytes | None = None, *, hint: str | None = None) -> DecodedText:
    """Decode ``data`` following the module's fallback chain; never raises."""
    if not data:
        return DecodedText("", normalize_charset(declared) or "utf-8")
    for bom, codec in _BOMS:
        if data.startswith(bom) and (text := _try(data, codec)) is not None:
            return DecodedText(text, codec)
    label = clean_charset_label(declared)
    declared_codecs = charset_codecs(label)
    problem = None if declared_codecs or label in _NO_INFORMATION else f"unknown charset {label!r}"
    if declared_codecs:
        legacy = not declared_codecs[0].startswith(_NEVER_OVERRIDDEN)
        if legacy and not data.isascii() and (text := _try(data, "utf-8")) is not None:
            return DecodedText(text, "utf-8", f"declared charset {label!r} but content is UTF-8")
        for codec in declared_codecs:
            if (text := _try(data, codec)) is not None:
                return DecodedText(text, codec)
        problem = f"content is not valid {label!r}"
    elif data.isascii() and not _ISO2022_ESCAPE.search(data):
        return DecodedText(data.decode("ascii"), "us-ascii", problem)
    problem = problem or ("charset not declared" if not label else f"charset {label!r} carries no information")
    guessed = _guess(data, hint)
    if guessed is not None:
        return DecodedText(guessed[0], guessed[1], f"{problem}, detected {guessed[1]}")
    fallback = declared_codecs[0] if declared_codecs else "utf-8"
    return DecodedText(data.decode(fallback, errors="replace"), fallback,
                       f"{problem}; decoded as {fallback} with replacement characters")


def _guess(data: bytes, hint: str | None) -> tuple[str, str] | None:
    candidates = ["utf-8", *charset_codecs(hint)]
    if _ISO2022_ESCAPE.search(data):
        # Old Japanese/Korean mailers put raw ISO-2022 escapes in headers and bodies without a
        # label. The escapes are ASCII, so these must be tried before UTF-8.
        candidates = ["iso2022_jp", "iso2022_jp_2004", "iso2022_jp_ext", "iso2022_kr", *candidates]
    for codec in candidates:
        if (text := _try(data, codec)) is not None:
            return text, codec
    detected = detect_charset(data)
    if detected and (text := _try(data, detected)) is not None:
        return text, detected
    if (text := _try(data, "cp1252")) is not None:
        return text, "cp1252"
    return None
