"""Plain text from HTML mail bodies, and a strict HTML sanitiser for later rich rendering.

Reports from strangers arrive as HTML from every mail client; the team reads them as plain
text in a Matrix thread, so the conversion favours readability over fidelity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import nh3

__all__ = ["html_to_text", "sanitize_html"]

# Elements whose content is never shown to a reader of the mail.
_DROPPED = frozenset({"script", "style", "title", "template"})
# Elements that may appear inside <head>; any other start tag means the body has begun
# even when the sender never wrote </head> or <body> (browsers do the same).
_HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript"})
# Block elements that end the current line.
_LINE_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "center",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "legend",
        "main",
        "nav",
        "section",
        "summary",
        "tbody",
        "tfoot",
        "thead",
        "tr",
    }
)
# Block elements that are set off by a blank line, like paragraphs in a plain-text mail.
_PARAGRAPH_BLOCKS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "blockquote", "ul", "ol"}
)
_CELLS = frozenset({"td", "th"})
# Outside <pre>, every run of HTML whitespace (and the no-break space Outlook uses for
# empty paragraphs) is one space.
_WHITESPACE_RE = re.compile(r"[ \t\n\r\f\v\xa0]+")
# Link targets that say nothing useful to a reader of plain text.
_HIDDEN_SCHEMES = ("javascript:", "data:", "vbscript:", "cid:")


@dataclass
class _Anchor:
    href: str
    text: list[str] = field(default_factory=list)


@dataclass
class _Line:
    quote_depth: int
    text: str


class _TextExtractor(HTMLParser):
    """Collects lines of text while walking the tag stream; tolerant of unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[_Line] = []
        # The current line as pieces: joining once per line keeps long single-line
        # documents (thousands of inline tags) linear instead of quadratic.
        self._current: list[str] = []
        # The bullet or indentation that starts the current line inside lists; kept apart
        # from the text so that an empty list item does not count as content.
        self._prefix = ""
        self._drop_depth = 0
        self._in_head = False
        self._pre_depth = 0
        self._quote_depth = 0
        self._list_depth = 0
        # Links cannot nest in HTML; a new <a> closes the open one, as in browsers. This
        # also keeps hostile input with thousands of unclosed <a> tags linear.
        self._anchor: _Anchor | None = None

    # -- line building -------------------------------------------------------------------

    def _push_line(self, force: bool = False) -> None:
        """End the current line; an empty line is only kept when `force` (a <br>)."""
        text = "".join(self._current).rstrip()
        if text or force:
            self.lines.append(_Line(self._quote_depth, (self._prefix + text).rstrip()))
        self._current = []
        self._prefix = "  " * self._list_depth

    def _blank_line(self) -> None:
        self._push_line()
        if self.lines and self.lines[-1].text:
            self.lines.append(_Line(self._quote_depth, ""))

    def _add_inline(self, text: str) -> None:
        text = _WHITESPACE_RE.sub(" ", text)
        if not self._current:
            text = text.lstrip(" ")
        elif self._current[-1].endswith(" ") and text.startswith(" "):
            text = text[1:]
        if text:
            self._current.append(text)

    def _add_preformatted(self, text: str) -> None:
        pieces = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for index, piece in enumerate(pieces):
            if index:
                self._push_line(force=True)
            if piece:
                self._current.append(piece.replace("\xa0", " "))

    # -- parser callbacks ----------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._in_head and tag not in _HEAD_CONTENT:
            self._in_head = False
        if tag == "head":
            self._in_head = True
            return
        if tag == "body":
            self._in_head = False
            return
        if tag in _DROPPED:
            self._drop_depth += 1
            return
        if tag == "br":
            self._push_line(force=True)
        elif tag in ("ul", "ol"):
            # A nested list continues its parent item; only an outer list is a paragraph.
            if self._list_depth:
                self._push_line()
            else:
                self._blank_line()
            self._list_depth += 1
            self._prefix = "  " * self._list_depth
        elif tag == "li":
            self._push_line()
            self._prefix = "  " * max(self._list_depth - 1, 0) + "- "
        elif tag == "blockquote":
            self._blank_line()
            self._quote_depth += 1
        elif tag == "pre":
            self._blank_line()
            self._pre_depth += 1
        elif tag in _PARAGRAPH_BLOCKS:
            self._blank_line()
        elif tag in _LINE_BLOCKS:
            self._push_line()
        elif tag in _CELLS:
            if self._current and not self._current[-1].endswith(" "):
                self._current.append(" ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._close_anchor()
            self._anchor = _Anchor(href.strip())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # "<x/>" is "<x></x>": an empty element must not leave a list, quote or drop
        # counter open ("<style/>" would otherwise hide the rest of the mail).
        if tag in _DROPPED or tag == "head":
            return
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
            return
        if tag in _DROPPED:
            self._drop_depth = max(self._drop_depth - 1, 0)
            return
        if tag in ("ul", "ol"):
            self._push_line()
            self._list_depth = max(self._list_depth - 1, 0)
            self._prefix = "  " * self._list_depth
            if not self._list_depth:
                self._blank_line()
        elif tag == "li":
            self._push_line()
        elif tag == "blockquote":
            self._push_line()
            self._quote_depth = max(self._quote_depth - 1, 0)
            if self.lines and not self.lines[-1].text:
                # The quote's last paragraph break belongs outside it: no dangling ">".
                self.lines[-1] = _Line(self._quote_depth, "")
            else:
                self._blank_line()
        elif tag == "pre":
            self._pre_depth = max(self._pre_depth - 1, 0)
            self._blank_line()
        elif tag in _PARAGRAPH_BLOCKS:
            self._blank_line()
        elif tag in _LINE_BLOCKS:
            self._push_line()
        elif tag == "a":
            self._close_anchor()

    def handle_data(self, data: str) -> None:
        if self._drop_depth:
            return
        if self._in_head:
            if not data.strip():
                return
            # Text cannot live in <head>: it starts the body, as in browsers.
            self._in_head = False
        if self._anchor is not None:
            self._anchor.text.append(data)
        if self._pre_depth:
            self._add_preformatted(data)
        else:
            self._add_inline(data)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # The standard library raises AssertionError on "<![foo[" (anything but CDATA or
        # the MS Office "<![if ...]>" forms); hostile or broken HTML must not stop the
        # conversion, so such a section is skipped up to the next ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return len(self.rawdata) if end < 0 else end + 1

    def _close_anchor(self) -> None:
        anchor, self._anchor = self._anchor, None
        if anchor is None:
            return
        target = _link_target(anchor.href)
        if not target:
            return
        text = _WHITESPACE_RE.sub(" ", "".join(anchor.text)).strip()
        if not text:
            self._add_inline(" " + target)
        elif _comparable(text) != _comparable(target):
            self._add_inline(f" ({target})")

    def finish(self) -> str:
        self._close_anchor()
        self._push_line()
        return _render(self.lines)


def _link_target(href: str) -> str:
    """What a reader should see of a link target, or "" for in-page and script links."""
    if not href or href.startswith("#"):
        return ""
    if href.lower().startswith(_HIDDEN_SCHEMES):
        return ""
    if href.lower().startswith("mailto:"):
        return href[len("mailto:") :].split("?", 1)[0]
    return href


def _comparable(value: str) -> str:
    """Link text and target are "the same" when they differ only in scheme or a final slash."""
    value = value.strip().lower()
    for scheme in ("mailto:", "https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme) :]
            break
    return value.rstrip("/")


def _render(lines: list[_Line]) -> str:
    out: list[str] = []
    for line in lines:
        text = line.text.rstrip()
        if line.quote_depth:
            text = ("> " * line.quote_depth + text).rstrip()
        # A blank line is one with no content, quoted or not; never two in a row.
        is_blank = not text.strip("> ")
        if is_blank and (not out or not out[-1].strip("> ")):
            continue
        out.append(text)
    while out and not out[-1].strip("> "):
        out.pop()
    return "\n".join(out)


# The tags the text extractor acts on; nh3 keeps these (and the text of every other tag).
_STRUCTURE_TAGS = (
    _LINE_BLOCKS | _PARAGRAPH_BLOCKS | _CELLS | {"br", "li", "a", "ul", "ol", "pre", "blockquote"}
)


# "<x/>" of an element that is not void; a browser (and html5ever) would leave it open, so
# that "<style/>" hid the rest of the mail. Read as "<x></x>" instead.
_SELF_CLOSING_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)(\s[^<>]*)?/>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def _closed(match: re.Match[str]) -> str:
    tag = match.group(1)
    if tag.lower() in _VOID:
        return match.group(0)
    return f"<{tag}{match.group(2) or ''}></{tag}>"


def _well_formed(html: str) -> str:
    """The markup re-serialised by nh3 (html5ever, linear time): no comments, no unclosed
    constructs. The standard library's HTMLParser rescans from every unclosed "<!--" or
    "<a " to the end of the input, which is quadratic (40,000 characters of "<a ": 26 s)."""
    return str(
        nh3.clean(
            _SELF_CLOSING_RE.sub(_closed, html),
            tags=set(_STRUCTURE_TAGS),
            clean_content_tags=set(_DROPPED),
            attributes={"a": {"href"}},
            link_rel=None,
            strip_comments=True,
        )
    )


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document or fragment; never raises on bad markup."""
    parser = _TextExtractor()
    try:
        parser.feed(_well_formed(html))
        parser.close()
    except AssertionError:
        # Older or future parser internals may still assert on odd markup; whatever was
        # read up to that point is still the best text we have.
        pass
    return parser.finish()


_ALLOWED_TAGS = {
    "p",
    "br",
    "b",
    "strong",
    "i",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
}


def sanitize_html(html: str) -> str:
    """HTML reduced to a small formatting allow-list; links only to http(s) and mailto."""
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        # Drop these with their content: a stylesheet or script shown as text is noise.
        clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return str(cleaned)
