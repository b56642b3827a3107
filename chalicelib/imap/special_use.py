"""Which mailbox is Sent, Trash, Drafts...: server flags first, then well-known names.

Pure functions over LIST results; no I/O. The one resolver: the mail API's mailbox listing
and every watcher event's ``specialUse`` come from here (via :mod:`.folders`). Three
sources, in order of trust:

1. ``extension``: RFC 6154 SPECIAL-USE attributes (``\\Sent``, ``\\Trash``, ...) in LIST.
2. ``xlist``: Gmail's older XLIST attributes (``\\AllMail``, ``\\Spam``, ``\\Starred``,
   ``\\Inbox``), mapped onto their RFC 6154 names.
3. ``name``: the folder's name in one of the languages providers localize to ("Sent
   Items" on Exchange, "Gesendet" on German hosts, "Éléments envoyés" in French Outlook,
   "[Gmail]/All Mail"). Only top-level folders and children of INBOX or ``[Gmail]`` count
   (Courier and Cyrus put everything under ``INBOX.``), and a role the server already
   flagged on another folder is never guessed again.

Invariant: each role is given to at most one folder by name; server-flagged roles may
repeat (the server said so).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from chalicelib.sync.mailboxes import ListedMailbox

__all__ = ["LOCALIZED_NAMES", "SPECIAL_USE_FLAGS", "XLIST_FLAGS", "ListedMailbox", "SpecialUse",
           "assign_special_uses", "role_from_flags", "role_from_name"]

SPECIAL_USE_FLAGS = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important")
XLIST_FLAGS = {"\\AllMail": "\\All", "\\Spam": "\\Junk", "\\Starred": "\\Flagged", "\\Important": "\\Important",
               "\\Sent": "\\Sent", "\\Drafts": "\\Drafts", "\\Trash": "\\Trash", "\\Inbox": "\\Inbox"}
# Parents under which the names below still mean their role.
ROLE_PARENTS = ("inbox", "[gmail]", "[google mail]")

LOCALIZED_NAMES: dict[str, tuple[str, ...]] = {
    "\\Sent": ("Sent", "Sent Items", "Sent Mail", "Sent Messages", "Sent Email", "Gesendet", "Gesendete Elemente",
               "Gesendete Objekte", "Éléments envoyés", "Messages envoyés", "Envoyés", "Enviados",
               "Elementos enviados", "Mensajes enviados", "Itens enviados", "Posta inviata", "Inviati",
               "Elementi inviati", "Verzonden", "Verzonden items", "Skickat", "Skickade objekt", "Sendt",
               "Sendte elementer", "Sendte", "Lähetetyt", "Wysłane", "Odeslaná pošta", "Отправленные",
               "Надіслані", "Gönderilmiş Öğeler", "已发送", "已發送", "送信済み", "送信済みアイテム", "보낸 편지함"),
    "\\Trash": ("Trash", "Deleted Items", "Deleted Messages", "Deleted", "Bin", "Papierkorb", "Gelöschte Elemente",
                "Gelöschte Objekte", "Corbeille", "Éléments supprimés", "Papelera", "Elementos eliminados",
                "Lixeira", "Itens excluídos", "Cestino", "Posta eliminata", "Elementi eliminati", "Prullenbak",
                "Verwijderde items", "Papperskorg", "Borttagna objekt", "Papirkurv", "Slettede elementer",
                "Roskakori", "Kosz", "Koš", "Корзина", "Удаленные", "Удалённые", "Кошик", "Çöp Kutusu",
                "已删除", "已刪除", "ゴミ箱", "削除済みアイテム", "휴지통"),
    "\\Drafts": ("Drafts", "Draft", "Entwürfe", "Brouillons", "Borradores", "Rascunhos", "Bozze", "Concepten",
                 "Utkast", "Kladder", "Luonnokset", "Wersje robocze", "Koncepty", "Черновики", "Чернетки",
                 "Taslaklar", "草稿", "草稿箱", "下書き", "임시 보관함"),
    "\\Junk": ("Junk", "Junk E-mail", "Junk Email", "Junk Mail", "Spam", "Bulk Mail", "Junk-E-Mail",
               "Courrier indésirable", "Indésirables", "Correo no deseado", "Lixo eletrônico", "Posta indesiderata",
               "Ongewenste e-mail", "Skräppost", "Uønsket e-post", "Roskaposti", "Nevyžádaná pošta", "Спам",
               "Нежелательная почта", "Önemsiz E-posta", "垃圾邮件", "垃圾郵件", "迷惑メール", "스팸"),
    "\\Archive": ("Archive", "Archives", "Archiv", "Archivo", "Arquivo", "Archivio", "Archief", "Arkiv", "Arkisto",
                  "Archiwum", "Архив", "Архів", "Arşiv", "归档", "存档", "アーカイブ", "보관함"),
}
# Gmail's system folders whose names exist only under [Gmail]/[Google Mail].
GMAIL_NAMES = {"all mail": "\\All", "starred": "\\Flagged", "important": "\\Important"}


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold().strip()


_NAME_TO_ROLE = {_fold(name): role for role, names in LOCALIZED_NAMES.items() for name in names}


@dataclass(frozen=True)
class SpecialUse:
    role: str
    source: Literal["extension", "xlist", "name"]


def role_from_flags(flags: Iterable[str], *, xlist: bool = False) -> SpecialUse | None:
    """The special use a server announced in a LIST (or, with ``xlist``, an XLIST) answer."""
    lowered = {flag.lower() for flag in flags}
    table = XLIST_FLAGS if xlist else {flag: flag for flag in SPECIAL_USE_FLAGS}
    for flag, role in table.items():
        if flag.lower() in lowered and role != "\\Inbox":  # INBOX is INBOX by name anyway
            return SpecialUse(role, "xlist" if xlist else "extension")
    return None


def role_from_name(path: str, delimiter: str | None) -> str | None:
    """The role a folder's name suggests, or None (nested folders other than INBOX's/[Gmail]'s)."""
    parts = path.split(delimiter) if delimiter else [path]
    if len(parts) > 2 or (len(parts) == 2 and _fold(parts[0]) not in ROLE_PARENTS):
        return None
    leaf = _fold(parts[-1])
    if len(parts) == 2 and _fold(parts[0]) in ("[gmail]", "[google mail]") and leaf in GMAIL_NAMES:
        return GMAIL_NAMES[leaf]
    return _NAME_TO_ROLE.get(leaf)


def assign_special_uses(mailboxes: Sequence[ListedMailbox], *, xlist: bool = False) -> dict[str, SpecialUse]:
    """Role of every mailbox that has one, by path. INBOX is always ``\\Inbox``."""
    result: dict[str, SpecialUse] = {}
    for mailbox in mailboxes:
        if mailbox.path.upper() == "INBOX":
            result[mailbox.path] = SpecialUse("\\Inbox", "name")
            continue
        flagged = role_from_flags(mailbox.flags, xlist=xlist)
        if flagged is not None:
            result[mailbox.path] = flagged
    taken = {use.role for use in result.values()}
    # Prefer the shortest path for a role ("Sent" over "INBOX/Sent") when several match.
    for mailbox in sorted(mailboxes, key=lambda m: (m.path.count(m.delimiter or "\0"), m.path)):
        if mailbox.path in result or any(f.lower() == "\\noselect" for f in mailbox.flags):
            continue
        role = role_from_name(mailbox.path, mailbox.delimiter)
        if role is not None and role not in taken:
            result[mailbox.path] = SpecialUse(role, "name")
            taken.add(role)
    return result
