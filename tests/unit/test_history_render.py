"""!history's rendering (bot/matrix/history.py): one line per entry, newest last, in the
policy's time zone; mail text stays inert; a long history keeps its newest entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.matrix.history import MAX_CHARS, MAX_ENTRIES, history_post
from storage.case_events import CaseEvent

AMS = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ALICE = "@alice:example.org"


def test_entries_in_order_with_actor_time_and_words() -> None:
    events = [
        CaseEvent(T0, "mail:sam@finder.example", "opened", {"source": "imap"}),
        CaseEvent(T0 + timedelta(minutes=5), ALICE, "assigned", {"assignee": ALICE}),
        CaseEvent(T0 + timedelta(hours=1), ALICE, "note", {"text": "called the supplier"}),
        CaseEvent(
            T0 + timedelta(days=1),
            ALICE,
            "assessment_revised",
            {"revised": "medium -> high", "cvss_score": "CVSS 3.1 base score 7.5 (high)"},
        ),
        CaseEvent(T0 + timedelta(days=2), ALICE, "closed_for_test", {"outcome": "fixed"}),
    ]
    post = history_post("CVD-2026-0001", events, AMS)
    lines = post.body.splitlines()
    assert lines[0] == (
        "History of CVD-2026-0001 (5 entries, times Europe/Amsterdam, newest last):"
    )
    assert lines[1] == "2 Nov 2026 10:00 · mail:sam@finder.example · case opened from a mail (imap)"
    defused = "@\u2060alice:example.org"
    assert lines[2] == f"2 Nov 2026 10:05 · {defused} · assigned to {defused}"
    assert lines[3].endswith("· note: called the supplier")
    assert lines[4] == (
        "3 Nov 2026 10:00 · @\u2060alice:example.org · assessment revised: medium -> high "
        "(CVSS 3.1 base score 7.5 (high))"
    )
    # A kind this module has no words for still shows, with its values.
    assert lines[5].endswith("· closed for test: outcome fixed")
    assert post.mentions == ()


def test_mail_text_cannot_mention_inject_html_or_start_a_command() -> None:
    hostile = "@room <b>hi</b>\n!fixed now @mallory:evil.example"
    events = [CaseEvent(T0, f"mail:{hostile}", "forwarded", {"forwarded_by": hostile})]
    post = history_post("CVD-2026-0001", events, AMS)
    assert "@room" not in post.body and "@mallory:" not in post.body
    assert "<b>" not in post.html and "&lt;b&gt;" in post.html
    assert len(post.body.splitlines()) == 2, "a newline in mail text does not start a line"
    assert not any(line.startswith("!") for line in post.body.splitlines())


def test_a_long_history_keeps_the_newest_and_says_how_many_are_left_out() -> None:
    events = [
        CaseEvent(T0 + timedelta(minutes=i), ALICE, "note", {"text": f"note number {i}"})
        for i in range(MAX_ENTRIES + 25)
    ]
    lines = history_post("CVD-2026-0001", events, AMS).body.splitlines()
    assert "(65 entries" in lines[0] and "the 25 oldest are left out" in lines[0]
    assert len(lines) == 1 + MAX_ENTRIES
    assert lines[1].endswith("note number 25") and lines[-1].endswith(f"note number {64}")


def test_long_notes_are_cut_and_the_whole_stays_within_its_size() -> None:
    events = [
        CaseEvent(T0 + timedelta(minutes=i), ALICE, "note", {"text": "x" * 4000}) for i in range(30)
    ]
    body = history_post("CVD-2026-0001", events, AMS).body
    assert len(body) <= MAX_CHARS + 200
    assert "oldest are left out" in body.splitlines()[0]
    assert all(len(line) < 800 for line in body.splitlines())


def test_an_empty_history() -> None:
    assert history_post("CVD-2026-0001", [], AMS).body == "History of CVD-2026-0001: no entries."
