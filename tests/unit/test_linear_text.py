"""Issue 10 item 4: the text a mail brings is read in time linear in its length.

Each function the intake runs over a subject or body is given 40,000 characters of the
shapes that made a regular expression or the HTML parser rescan from every position (before
the fix: 2 to 26 s each; now milliseconds). The bound is generous for a shared machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bot.mailin.html_text import html_to_text
from bot.mailin.language import detect_language
from bot.mailin.report_check import check_report, extract_targets

SIZE = 40_000
LIMIT_SECONDS = 1.0


def _check(text: str) -> object:
    return check_report(text, reporter_address=None)


SHAPES = ["A", "a.", "a-", "1:", "x+", "a b ", "deadbeef:"]
TEXT_FUNCTIONS: list[tuple[str, Callable[[str], object]]] = [
    ("check_report", _check),
    ("extract_targets", extract_targets),
    ("detect_language", detect_language),
]


def _elapsed(function: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    function(text)
    return time.perf_counter() - start


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("name", "function"), TEXT_FUNCTIONS)
def test_text_checks_are_linear_in_one_long_run(
    name: str, function: Callable[[str], object], shape: str
) -> None:
    text = (shape * SIZE)[:SIZE]
    assert _elapsed(function, text) < LIMIT_SECONDS, f"{name} on {shape!r} * {SIZE}"


@pytest.mark.parametrize("shape", ["<!--", "<a ", "<a\n", '<b x="', '<a href="x', "<!--x--"])
def test_html_to_text_is_linear_in_unclosed_markup(shape: str) -> None:
    text = (shape * SIZE)[:SIZE]
    assert _elapsed(html_to_text, text) < LIMIT_SECONDS, f"html_to_text on {shape!r}"


def test_html_to_text_still_reads_what_it_read() -> None:
    html = "<p>Hallo <b>wereld</b><!-- x --></p><ul><li>een</li></ul><style>p{}</style>na"
    assert html_to_text(html) == "Hallo wereld\n\n- een\n\nna"
