"""The declarative command registry: parsing, usage errors, help."""

from __future__ import annotations

import pytest

from commands import build_registry
from commands.registry import Arg, CommandGroup, Registry, UsageError, split_command


@pytest.fixture
def registry() -> Registry:
    return build_registry()


def test_split_command() -> None:
    assert split_command("!ack") == ("ack", "")
    assert split_command("  !Assess high some text ") == ("assess", "high some text")
    assert split_command("ack") is None
    assert split_command("!") is None
    assert split_command("!!!") is None
    assert split_command("> !fixed quoted") is None


def test_assess_binds_severity_optional_vector_and_text(registry: Registry) -> None:
    assess = registry.get("assess")
    assert assess is not None
    assert assess.parse("high") == {"severity": "high", "vector": None, "text": None}
    assert assess.parse("HIGH stored XSS in the form") == {
        "severity": "high",
        "vector": None,
        "text": "stored XSS in the form",
    }
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
    assert assess.parse(f"medium {vector} reflected") == {
        "severity": "medium",
        "vector": vector,
        "text": "reflected",
    }


def test_usage_errors(registry: Registry) -> None:
    assess = registry.get("assess")
    assert assess is not None
    with pytest.raises(UsageError, match="missing <none|low|medium|high|critical>"):
        assess.parse("")
    with pytest.raises(UsageError, match="severity must be one of"):
        assess.parse("urgent")
    ack = registry.get("ack")
    assert ack is not None
    with pytest.raises(UsageError, match="unexpected 'now please'"):
        ack.parse("now please")


def test_usage_lines(registry: Registry) -> None:
    assess = registry.get("assess")
    assert assess is not None
    assert assess.usage() == (
        "!assess [CVD-YYYY-NNNN] <none|low|medium|high|critical> [CVSS vector] [text]"
    )
    helper = registry.get("help")
    assert helper is not None and helper.usage() == "!help [command]"


def test_help_lists_every_command_with_usage(registry: Registry) -> None:
    text = registry.help_text()
    for command in registry.all():
        assert command.usage() in text
    for name in ("ack", "assess", "fixed", "status", "help"):
        assert registry.get(name) is not None


def test_help_for_one_command(registry: Registry) -> None:
    text = registry.help_text("!fixed")
    assert text.splitlines()[0] == "!fixed [CVD-YYYY-NNNN] [text]"
    assert "Only after !ack and !assess" in text
    with pytest.raises(UsageError, match="no command !nope"):
        registry.help_text("nope")


def test_a_name_declared_twice_is_a_bug() -> None:
    group = CommandGroup()

    async def handler() -> str:
        return ""

    group.command("x", summary="x")(handler)
    group.command("x", summary="x", args=[Arg("a")])(handler)
    with pytest.raises(ValueError, match="declared twice"):
        Registry([group])


def test_the_command_word_ends_at_any_whitespace_and_the_rest_keeps_its_lines(
    registry: Registry,
) -> None:
    """Issue 10 item 10: "!fixed\\nOutput encoding added" and "!pause\\twaiting" are commands."""
    assert split_command("!fixed\nOutput encoding added") == ("fixed", "Output encoding added")
    assert split_command("!pause\twaiting") == ("pause", "waiting")
    assert split_command("!fixed\r\nline one\nline two\n") == ("fixed", "line one\nline two")
    assert split_command("!ack\n") == ("ack", "")
    assessed = registry.get("assess")
    assert assessed is not None
    assert assessed.parse("high\tCVSS:3.1/AV:N\nfirst line\nsecond line") == {
        "severity": "high",
        "vector": "CVSS:3.1/AV:N",
        "text": "first line\nsecond line",
    }
