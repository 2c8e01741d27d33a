"""Tests for bot.config: loading, defaults, environment overrides and error reporting."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel

from bot.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config.sample.yaml"

MINIMAL: dict[str, Any] = {
    "matrix": {
        "homeserver": "https://matrix.example.org",
        "user_id": "@cvdbot:example.org",
        "password": "matrix-pw-SECRET-1",
        "store_path": "data/matrix-store",
        "case_room": "!cases:example.org",
        "team": ["@alice:example.org"],
    },
    "imap": {
        "host": "imap.example.org",
        "port": 993,
        "security": "tls",
        "username": "security@example.org",
        "password": "imap-pw-SECRET-2",
    },
    "smtp": {
        "host": "smtp.example.org",
        "port": 587,
        "security": "starttls",
        "from_address": "security@example.org",
    },
    "pgp": {
        "gnupg_home": "data/gnupg",
        "key_fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
        "passphrase": "pgp-pass-SECRET-3",
    },
    "storage": {"path": "data/cvdbot.sqlite3"},
}

SECRETS = ("matrix-pw-SECRET-1", "imap-pw-SECRET-2", "pgp-pass-SECRET-3")


def write(tmp_path: Path, data: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    """MINIMAL with some keys of some sections replaced (None removes the key)."""
    data = copy.deepcopy(MINIMAL)
    for section, changes in sections.items():
        target = data.setdefault(section, {})
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return data


def problems_of(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return dict(caught.value.problems)


# ---------------------------------------------------------------------------------------


def test_sample_loads_and_resolves_paths_against_its_directory() -> None:
    config = load_config(SAMPLE, {})
    assert isinstance(config, Config)
    assert config.matrix.store_path == REPO / "data" / "matrix-store"
    assert config.pgp.gnupg_home == REPO / "data" / "gnupg"
    assert config.storage.path == REPO / "data" / "cvdbot.sqlite3"
    assert config.imap.security == "tls"
    assert config.smtp.security == "starttls"
    assert config.matrix.server_name == "example.org"
    assert config.smtp.from_domain == "example.org"


def test_sample_documents_every_key_with_a_comment() -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    for section, info in Config.model_fields.items():
        model = info.annotation
        # An optional section (`ibd: IbdConfig | None`) documents the model's keys.
        model = next((arg for arg in get_args(model) if arg is not type(None)), model)
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for key in model.model_fields:
            line_no = next(
                (
                    i
                    for i, line in enumerate(lines)
                    if line.strip().startswith(f"{key}:") and _section_of(lines, i) == section
                ),
                None,
            )
            assert line_no is not None, f"{section}.{key} missing from the sample"
            assert lines[line_no - 1].strip().startswith("#"), f"{section}.{key} has no comment"


def _section_of(lines: list[str], index: int) -> str:
    for line in reversed(lines[:index]):
        if line and not line.startswith((" ", "#")):
            return line.split(":", 1)[0]
    return ""


def test_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {})
    assert config.matrix.device_name == "cvdbot"
    assert config.matrix.digest_room is None
    assert config.matrix.effective_digest_room == "!cases:example.org"
    assert config.matrix.managers == []
    assert config.imap.folder == "INBOX"
    assert config.smtp.username is None
    assert config.smtp.password is None
    policy = config.policy
    assert policy.timezone == "Europe/Amsterdam"
    assert policy.zone.key == "Europe/Amsterdam"
    assert policy.holiday_country == "NL"
    assert policy.acknowledge_within_working_days == 2
    assert policy.assess_within_working_days == 5
    assert policy.fix_within_days == 90
    assert policy.default_language == "nl"
    assert policy.business_hours_start == "09:00"
    assert policy.business_hours_end == "17:00"
    assert policy.business_hours_start_time.hour == 9
    assert policy.closing_days == []
    assert policy.working_holidays == []
    assert policy.liberation_day == "package"
    assert config.digest.time == "08:30"
    assert config.digest.time_of_day.minute == 30
    assert config.digest.email_to == []
    assert config.limits.max_body_chars_in_thread == 20000
    assert config.limits.max_attachment_bytes_in_thread == 10485760
    assert config.matrix.store_path == tmp_path / "data" / "matrix-store"


def test_empty_optional_sections_count_as_left_out(tmp_path: Path) -> None:
    data = {**MINIMAL, "policy": None, "digest": None, "limits": None}
    config = load_config(write(tmp_path, data), {})
    assert config.digest.time == "08:30"
    assert config.policy.fix_within_days == 90


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(storage={"path": "/var/lib/cvdbot/db"})), {})
    assert config.storage.path == Path("/var/lib/cvdbot/db")


def test_relative_paths_follow_the_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc", MINIMAL)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/config.yaml"), {})
    assert config.storage.path == tmp_path / "etc" / "data" / "cvdbot.sqlite3"


def test_extended_policy_keys(tmp_path: Path) -> None:
    data = minimal(
        policy={
            "business_hours_start": "8:30",
            "business_hours_end": "16:45",
            "closing_days": ["2026-12-24", "2026-12-31"],
            "working_holidays": ["Good Friday", "goede vrijdag", "2026-05-05"],
            "liberation_day": "every_year",
        },
        digest={"email_to": ["boss@example.org"]},
        limits={"max_body_chars_in_thread": 5000},
    )
    config = load_config(write(tmp_path, data), {})
    policy = config.policy
    assert policy.business_hours_start == "08:30"
    assert policy.closing_days == [date(2026, 12, 24), date(2026, 12, 31)]
    assert policy.working_holiday_dates == frozenset({date(2026, 5, 5)})
    assert policy.working_holiday_names == frozenset({"good friday", "goede vrijdag"})
    assert policy.liberation_day == "every_year"
    assert config.limits.max_body_chars_in_thread == 5000
    assert config.limits.max_attachment_bytes_in_thread == 10485760


def test_yaml_11_traps_are_avoided(tmp_path: Path) -> None:
    # Unquoted: YAML 1.1 would read NO as False and 17:00 as 1020.
    text = yaml.safe_dump(MINIMAL, sort_keys=False) + (
        "policy:\n  holiday_country: NO\n  business_hours_end: 17:00\ndigest:\n  time: 07:45\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, {})
    assert config.policy.holiday_country == "NO"
    assert config.policy.business_hours_end == "17:00"
    assert config.digest.time == "07:45"


def test_fingerprint_as_gpg_prints_it(tmp_path: Path) -> None:
    spaced = "0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567"
    config = load_config(write(tmp_path, minimal(pgp={"key_fingerprint": spaced})), {})
    assert config.pgp.key_fingerprint == "0123456789ABCDEF0123456789ABCDEF01234567"


# ---------------------------------------------------------------------------------------
# environment overrides


def test_environment_overrides(tmp_path: Path) -> None:
    data = minimal(matrix={"password": None}, imap={"password": None})
    environ = {
        "CVDBOT_MATRIX__PASSWORD": "env-matrix-pw",
        # A secret that YAML would turn into a number or a list stays as written.
        "CVDBOT_IMAP__PASSWORD": "00123",
        "CVDBOT_PGP__PASSPHRASE": '["not", "a list"]',
        "CVDBOT_MATRIX__TEAM": '["@a:example.org", "@b:example.org"]',
        "CVDBOT_MATRIX__USER_ID": "@bot:example.net",
        "CVDBOT_MATRIX__DIGEST_ROOM": "!digest:example.net",
        "CVDBOT_POLICY__ASSESS_WITHIN_WORKING_DAYS": "7",
        "CVDBOT_POLICY__HOLIDAY_COUNTRY": "BE",
        "CVDBOT_DIGEST__TIME": "09:15",
        "CVDBOT_DIGEST__EMAIL_TO": "[boss@example.org]",
        "CVDBOT_IMAP__FOLDER": '"Security Reports"',
        "UNRELATED": "ignored",
    }
    config = load_config(write(tmp_path, data), environ)
    assert config.matrix.password.get_secret_value() == "env-matrix-pw"
    assert config.imap.password.get_secret_value() == "00123"
    assert config.pgp.passphrase.get_secret_value() == '["not", "a list"]'
    assert config.matrix.team == ["@a:example.org", "@b:example.org"]
    assert config.matrix.user_id == "@bot:example.net"
    assert config.matrix.server_name == "example.net"
    assert config.matrix.digest_room == "!digest:example.net"
    assert config.policy.assess_within_working_days == 7
    assert config.policy.holiday_country == "BE"
    assert config.digest.time == "09:15"
    assert config.digest.email_to == ["boss@example.org"]
    assert config.imap.folder == "Security Reports"


def test_environment_overrides_a_value_from_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {"CVDBOT_IMAP__PORT": "1993"})
    assert config.imap.port == 1993


def test_environment_fills_a_section_missing_from_the_file(tmp_path: Path) -> None:
    data = copy.deepcopy(MINIMAL)
    del data["storage"]
    config = load_config(write(tmp_path, data), {"CVDBOT_STORAGE__PATH": "db.sqlite3"})
    assert config.storage.path == tmp_path / "db.sqlite3"


def test_unknown_environment_override_is_a_problem(tmp_path: Path) -> None:
    environ = {
        "CVDBOT_MATRIX_PASSWORD": "typo-SECRET",
        "CVDBOT_IMAP__PASWORD": "typo2-SECRET",
        "CVDBOT_NOSUCH__KEY": "x",
        "CVDBOT_POLICY": "x",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MINIMAL), environ)
    problems = dict(caught.value.problems)
    assert "CVDBOT_MATRIX_PASSWORD" in problems["matrix_password"]
    assert "CVDBOT_MATRIX__PASSWORD" in problems["matrix_password"]  # the suggestion
    assert "CVDBOT_IMAP__PASWORD" in problems["imap.pasword"]
    assert "nosuch.key" in problems
    assert "whole section" in problems["policy"]
    assert "SECRET" not in caught.value.format()


def test_invalid_environment_list(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL), {"CVDBOT_MATRIX__TEAM": '["@a:x"'})
    assert "CVDBOT_MATRIX__TEAM" in problems["matrix.team"]


def test_environment_value_is_validated_like_the_file(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL), {"CVDBOT_IMAP__PORT": "0"})
    assert problems["imap.port"] == "must be at least 1 (got 0)"


# ---------------------------------------------------------------------------------------
# problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = minimal(
        matrix={
            "homeserver": "matrix.example.org",
            "user_id": "cvdbot@example.org",
            "case_room": "#cases:example.org",
            "team": ["@alice:example.org", "bob"],
            "pasword": "typo",
        },
        imap={"port": 70000, "security": "ssl"},
        smtp={"port": "twenty-five", "from_address": "security at example.org"},
        pgp={"key_fingerprint": None},
        policy={
            "timezone": "Europe/Amsterdm",
            "holiday_country": "XX",
            "default_language": "de",
            "assess_within_working_days": 0,
            "fix_within_days": -3,
            "business_hours_start": "18:00",
            "business_hours_end": "17:00",
        },
        digest={"time": "8.30", "email_to": ["not-an-address"]},
    )
    data["polcy"] = {}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), {})
    problems = dict(caught.value.problems)
    expected = {
        "matrix.homeserver": "http(s) URL",
        "matrix.user_id": "@name:example.org",
        "matrix.case_room": "room ID",
        "matrix.team[1]": "Matrix user ID",
        "matrix.pasword": "unknown setting; did you mean 'password'?",
        "imap.port": "at most 65535",
        "imap.security": "'tls', 'starttls' or 'none'",
        "smtp.port": "whole number",
        "smtp.from_address": "e-mail address",
        "pgp.key_fingerprint": "required setting is missing",
        "policy.timezone": "did you mean 'Europe/Amsterdam'?",
        "policy.holiday_country": "country code",
        "policy.default_language": "'nl' or 'en'",
        "policy.assess_within_working_days": "greater than 0",
        "policy.fix_within_days": "greater than 0",
        "policy.business_hours_end": "later than business_hours_start",
        "digest.time": "HH:MM",
        "digest.email_to[0]": "e-mail address",
        "polcy": "did you mean 'policy'?",
    }
    for key, fragment in expected.items():
        assert key in problems, f"{key} not reported: {problems}"
        assert fragment in problems[key], (key, problems[key])
    assert len(problems) == len(expected)
    text = caught.value.format()
    assert text.startswith(f"The configuration has {len(expected)} problems:")
    assert "- imap.port: must be at most 65535 (got 70000)" in text.splitlines()
    # The offending value is shown for ordinary settings.
    assert "'Europe/Amsterdm'" in problems["policy.timezone"]


def test_nobody_in_charge(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, minimal(matrix={"team": [], "managers": []})))
    assert "both empty" in problems["matrix.managers"]


def test_managers_alone_are_enough(tmp_path: Path) -> None:
    data = minimal(matrix={"team": None, "managers": ["@boss:example.org"]})
    assert load_config(write(tmp_path, data), {}).matrix.team == []


def test_smtp_credentials_come_in_pairs(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, minimal(smtp={"username": "u"})))
    assert "password is needed" in problems["smtp.password"]
    data = minimal(smtp={"username": "u", "password": "p"})
    config = load_config(write(tmp_path, data), {})
    assert config.smtp.password is not None
    assert config.smtp.password.get_secret_value() == "p"


def test_unknown_holiday_name(tmp_path: Path) -> None:
    data = minimal(policy={"working_holidays": ["Goede Vrijdg", "2026-02-30"]})
    problems = problems_of(write(tmp_path, data))
    assert "'Goede Vrijdg'" in problems["policy.working_holidays"]
    assert "'2026-02-30'" in problems["policy.working_holidays"]


def test_bad_closing_day(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, minimal(policy={"closing_days": ["24-12-2026"]})))
    assert "YYYY-MM-DD" in problems["policy.closing_days[0]"]


def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, minimal(imap={"port": True})))
    assert "whole number" in problems["imap.port"]


def test_required_section_missing_and_empty(tmp_path: Path) -> None:
    data = copy.deepcopy(MINIMAL)
    del data["storage"]
    data["pgp"] = None
    problems = problems_of(write(tmp_path, data))
    assert problems["storage"] == "required setting is missing"
    assert "empty" in problems["pgp"]


def test_yaml_syntax_error_has_a_line_number(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("matrix:\n  homeserver: https://x\n  team: [@a:x\n", encoding="utf-8")
    problems = problems_of(path)
    assert list(problems) == [str(path)]
    assert "YAML syntax error at line 3" in problems[str(path)]


def test_duplicate_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("imap:\n  port: 993\n  host: x\n  port: 143\n", encoding="utf-8")
    problem = problems_of(path)[str(path)]
    assert "duplicate key 'port' (first set on line 2)" in problem
    assert "line 4" in problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems_of(path) == {str(path): "file not found"}


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert "top level must be a mapping" in problems_of(path)[str(path)]


def test_empty_file_lists_the_missing_sections(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    problems = problems_of(path)
    assert set(problems) == {"matrix", "imap", "smtp", "pgp", "storage"}


# ---------------------------------------------------------------------------------------
# clear text only on loopback


@pytest.mark.parametrize("section", ["imap", "smtp"])
def test_security_none_refused_for_a_remote_host(tmp_path: Path, section: str) -> None:
    problems = problems_of(write(tmp_path, minimal(**{section: {"security": "none"}})))
    why = problems[f"{section}.security"]
    assert "loopback" in why
    assert "clear text" in why


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
def test_security_none_accepted_on_loopback(tmp_path: Path, host: str) -> None:
    data = minimal(imap={"host": host, "security": "none"}, smtp={"host": host, "security": "none"})
    config = load_config(write(tmp_path, data), {})
    assert config.imap.security == "none"
    assert config.smtp.host == host


# ---------------------------------------------------------------------------------------
# secrets


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    data = minimal(smtp={"username": "u", "password": "smtp-pw-SECRET-4"})
    config = load_config(write(tmp_path, data), {})
    for text in (repr(config), str(config), repr(config.matrix), str(config.model_dump())):
        for secret in (*SECRETS, "smtp-pw-SECRET-4"):
            assert secret not in text


def test_secrets_are_not_in_error_messages(tmp_path: Path) -> None:
    data = minimal(
        matrix={"password": ["matrix-pw-SECRET-1"]},  # wrong type: would show the value
        imap={"password": 4242424242, "pasword": "typo-SECRET-5", "port": "bad"},
        pgp={"passphrase": {"nested": "pgp-pass-SECRET-3"}},
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), {"CVDBOT_SMTP__PASSWORD": "env-SECRET-6"})
    error = caught.value
    problems = dict(error.problems)
    assert "matrix.password" in problems
    assert "imap.password" in problems
    assert "imap.pasword" in problems
    assert "pgp.passphrase" in problems
    for text in (error.format(), str(error), repr(error)):
        for secret in (*SECRETS, "4242424242", "typo-SECRET-5", "env-SECRET-6"):
            assert secret not in text


def test_missing_secret_points_at_the_environment(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, minimal(pgp={"passphrase": None})))
    assert "CVDBOT_PGP__PASSPHRASE" in problems["pgp.passphrase"]
