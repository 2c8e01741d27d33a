"""Tests for bot.mailin.decoding: charsets with honest fallbacks, undecoded bytes, control
characters, format=flowed, and the guard around the email package."""

from __future__ import annotations

from bot.mailin.decoding import clean_body, decode_text, fix_surrogates, one_line, safe, unflow


def test_decode_text_declared_and_fallbacks() -> None:
    problems: list[str] = []
    assert decode_text("é".encode(), "utf-8", 1, problems) == "é"
    # iso-8859-1 is read as its superset windows-1252: 0x80 is the euro sign.
    assert decode_text(b"\x80 5", "iso-8859-1", 1, problems) == "€ 5"
    # windows-1252 leaves 0x81 undefined; latin-1 keeps the byte rather than failing.
    assert decode_text(b"a\x81", "windows-1252", 1, problems) == "a\x81"
    assert problems == []
    assert decode_text(b"plain", None, 2, problems) == "plain"
    assert decode_text("é".encode(), None, 2, problems) == "é"
    assert decode_text(b"caf\xe9", "klingon-8", 3, problems) == "café"
    assert decode_text(b"caf\xe9", "utf-8", 4, problems) == "café"
    assert problems == [
        "no charset declared for 8-bit text in part 2; shown as utf-8",
        "undecodable charset 'klingon-8' in part 3; shown as windows-1252",
        "text in part 4 is not valid utf-8; shown as windows-1252",
    ]


def test_escape_codecs_are_no_charset() -> None:
    problems: list[str] = []
    for declared in ("unicode_escape", "raw-unicode-escape", "punycode", "idna"):
        assert decode_text(b"a \\u0041 \\x00", declared, 1, problems) == "a \\u0041 \\x00"
    assert problems == [
        f"undecodable charset {name!r} in part 1; shown as utf-8"
        for name in ("unicode_escape", "raw-unicode-escape", "punycode", "idna")
    ]


def test_surrogates_and_control_characters() -> None:
    escaped = b"caf\xc3\xa9 \xe9".decode("utf-8", "surrogateescape")
    # Mixed bytes are not utf-8 as a whole: the whole value is read as windows-1252.
    assert fix_surrogates(escaped) == "cafÃ© é"
    assert fix_surrogates("caf\udcc3\udca9") == "café"
    assert fix_surrogates("lone \ud800") == "lone \ufffd"
    assert one_line(" a\r\n\tb\u202e  c\x00 ") == "a b c"
    assert clean_body("a\r\nb\rc\x07\u202e\td\n") == "a\nb\nc\td\n"


def test_unflow_joins_soft_breaks_and_keeps_quotes_and_signature() -> None:
    flowed = "Dear team, \nthe form \nleaks.\n> quoted \n> line\n-- \nSam"
    assert unflow(flowed, delsp=False) == ("Dear team, the form leaks.\n> quoted line\n-- \nSam")
    assert unflow("ab \ncd", delsp=True) == "abcd"
    assert unflow(" >stuffed", delsp=False) == ">stuffed"


def test_safe_returns_the_fallback_on_any_exception() -> None:
    assert safe(lambda: 1 // 1, 0) == 1
    assert safe(lambda: [][1], "fallback") == "fallback"
