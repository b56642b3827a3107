"""HTML -> readable plain text, for the ``text/plain`` alternative of mail we send.

Built on :class:`html.parser.HTMLParser` (no dependency, tolerant of broken markup):
- block elements (p, div, headings, lists, tables, blockquote, pre, hr) start new lines;
  paragraphs and headings are separated by a blank line, ``<br>`` is a line break;
- ``<li>`` items start with ``- ``; table cells of one row are separated by ``" | "``, so
  columns stay readable without a fixed-width font;
- links become ``text (url)``; the URL is dropped when it equals the text, and for
  ``mailto:`` links whose text is the address; ``javascript:`` and ``cid:`` URLs are dropped;
- images contribute their ``alt`` text; script, style, head, title and template content,
  and comments, are dropped; character references are decoded;
- white space is collapsed as a browser would, except inside ``<pre>``; no line ends with
  spaces and there are never more than two consecutive line breaks.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = {"script", "style", "head", "title", "template", "noscript", "svg"}
_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr",
               "address", "figure", "form", "fieldset"}
_LINES = {"div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "nav", "aside", "main",
          "caption", "center", "figcaption", "details", "summary"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}
_DROPPED_URL_SCHEMES = ("javascript:", "cid:", "data:", "#")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.links: list[tuple[str | None, int]] = []   # (href, index of the first chunk of the link text)
        self.cells_in_row = 0
        self.pending_newlines = 0

    # -- output helpers --------------------------------------------------------------

    def write(self, text: str) -> None:
        """Emit text; line breaks asked for since the last text are emitted first, merged."""
        if self.skip_depth:
            return
        if self.pending_newlines:
            if not self.pre_depth:
                text = text.lstrip(" ")
                if not text:
                    return  # white space between blocks is not content
            if self.chunks:
                self.chunks.append("\n" * self.pending_newlines)
            self.pending_newlines = 0
        elif not self.pre_depth and text.startswith(" ") and self.chunks and self.chunks[-1].endswith((" ", "\n")):
            text = text.lstrip(" ")  # white space collapses across elements too
        if text:
            self.chunks.append(text)

    def break_line(self, newlines: int = 1) -> None:
        """Block boundaries merge (a </p> then a <div> is one blank line)."""
        if not self.skip_depth:
            self.pending_newlines = max(self.pending_newlines, newlines)

    def line_break(self) -> None:
        """``<br>`` adds up: ``<br><br>`` is how many mailers write a blank line."""
        if not self.skip_depth:
            self.pending_newlines += 1

    # -- parser callbacks ------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _SKIPPED:
            self.skip_depth += 1
        elif tag == "br":
            self.line_break()
        elif tag == "pre":
            self.pre_depth += 1
            self.break_line(2)
        elif tag in _PARAGRAPHS:
            self.break_line(2)
            if tag == "hr":
                self.write("----------")
                self.break_line(2)
        elif tag in _LINES:
            self.break_line()
            if tag == "li":
                self.write("- ")
            if tag == "tr":
                self.cells_in_row = 0
        elif tag in ("td", "th"):
            if self.cells_in_row:
                self.write(" | ")
            self.cells_in_row += 1
        elif tag == "a":
            self.links.append((attributes.get("href"), len(self.chunks)))
        elif tag == "img" and attributes.get("alt"):
            self.write(f" {attributes['alt']} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip_depth = max(self.skip_depth - 1, 0)
        elif tag == "pre":
            self.pre_depth = max(self.pre_depth - 1, 0)
            self.break_line(2)
        elif tag in _PARAGRAPHS:
            self.break_line(2)
        elif tag in _LINES:
            self.break_line()
        elif tag == "a" and self.links:
            self._close_link()

    def handle_data(self, data: str) -> None:
        if self.pre_depth:
            self.write(data.replace("\r\n", "\n"))
        else:
            self.write(re.sub(r"[ \t\r\n\f\u200b]+", " ", data))

    def _close_link(self) -> None:
        href, start = self.links.pop()
        if not href:
            return
        href = href.strip()
        text = "".join(self.chunks[start:]).strip()
        target = href[len("mailto:"):] if href.lower().startswith("mailto:") else href
        if href.lower().startswith(_DROPPED_URL_SCHEMES) or target.rstrip("/") == text.rstrip("/"):
            return
        self.write(f" ({href})" if text else href)


def html_to_text(html: str) -> str:
    """Readable text from an HTML body (see the module docstring); ``""`` for empty input."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return _tidy("".join(extractor.chunks))


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
