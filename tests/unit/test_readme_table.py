"""The README's command table is the registry's (commands/readme_table.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands import build_registry
from commands.readme_table import BEGIN, END, FIX, README, main, render_table, replace_section
from commands.registry import CommandGroup, Registry, Role


def test_the_readme_table_is_the_registrys() -> None:
    readme = README.read_text(encoding="utf-8")
    wanted = replace_section(readme, render_table(build_registry()))
    assert readme == wanted, f"README.md's command table differs from the registry: run {FIX}"


def test_every_command_has_a_row_with_who_and_what_the_reporter_gets() -> None:
    registry = build_registry()
    table = render_table(registry).splitlines()
    assert len(table) == 2 + len(registry.all())
    assert (
        "| `!assess [CVD-YYYY-NNNN] <none\\|low\\|medium\\|high\\|critical> [CVSS vector] "
        "[text]` | record the assessment: the reporter gets the assessment mail | "
        "the CVD team and managers | the assessment mail |"
    ) in table
    assert (
        "| `!help [command]` | list the commands, or show one command's usage | "
        "anyone in the room | nothing |"
    ) in table
    # A step's higher role shows as !help shows it: the dispatcher refuses it to the team.
    assert (
        "| `!reward [CVD-YYYY-NNNN] <propose\\|approve\\|decline\\|details\\|sent> [text]` | "
        "the reward decision: the team proposes, a manager approves or declines | "
        "the CVD team and managers; approve/decline: managers only | "
        "on approve: the reward mail asking what is needed to deliver it |"
    ) in table
    assert "Who may run it: the CVD team and managers; approve/decline: managers only." in (
        registry.help_text("reward")
    )


def _registry_with_extra() -> Registry:
    extra = CommandGroup(list(build_registry().all()))

    @extra.command("frobnicate", summary="a new | command", role=Role.MANAGER, reporter_gets="x")
    async def frobnicate(ctx: object) -> str:
        return ""

    return Registry([extra])


def test_a_new_command_makes_the_check_fail_until_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nSTALE-ROW\n{END}\n\nafter\n", encoding="utf-8")
    assert main(["--check", "--readme", str(readme)]) == 1
    assert FIX in capsys.readouterr().err
    assert main(["--write", "--readme", str(readme)]) == 0
    assert main(["--check", "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert (
        text.startswith("# x\n\n")
        and text.endswith(f"{END}\n\nafter\n")
        and "STALE-ROW" not in text
    )

    monkeypatch.setattr("commands.readme_table.build_registry", _registry_with_extra)
    assert main(["--check", "--readme", str(readme)]) == 1
    row = "| `!frobnicate [CVD-YYYY-NNNN]` | a new \\| command | managers | x |"
    assert row in render_table(_registry_with_extra())


def test_a_readme_without_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="no"):
        replace_section("# README without a table\n", "| a |")
