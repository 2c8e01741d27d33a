"""Tests for bot.mailin.parse: real-client mails, broken mails, automatic mails, and fuzzing.

The header helpers alone are in test_header_fields.py, the text decoding in test_decoding.py.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mailin.html_text import html_to_text, sanitize_html
from bot.mailin.parse import (
    NotAMailError,
    ParsedMail,
    attachment_payloads,
    find_case_ids,
    parse_mail,
    parse_message,
)


def crlf(message: bytes) -> bytes:
    """Mail as it travels over SMTP and IMAP: CRLF line ends."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- plain text -----------------------------------------------------------------------------

THUNDERBIRD_PLAIN = crlf(
    b"""Return-Path: <pieter.jansen@example.nl>
Delivered-To: security@gemeente.example
Received: from mail.example.nl (mail.example.nl [192.0.2.10])
\tby mx.gemeente.example (Postfix) with ESMTPS id 4F1A2B3C4D
\tfor <security@gemeente.example>; Tue,  3 Feb 2026 10:12:09 +0100 (CET)
Message-ID: <8a1f7c2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b@example.nl>
Date: Tue, 3 Feb 2026 10:12:05 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: nl
To: security@gemeente.example
Cc: "CERT Team" <CERT@Gemeente.Example>
From: Pieter Jansen <Pieter.Jansen@Example.NL>
Subject: Kwetsbaarheid in het
 meldformulier
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Beste CVD-team,

Ik heb een reflected XSS gevonden in het meldformulier op uw website. Na\x20
het invullen van de zoekterm wordt de invoer ongefilterd getoond.

Met vriendelijke groet,
Pieter

--\x20
Pieter Jansen
"""
)


def test_plain_text_mail() -> None:
    mail = parse_mail(THUNDERBIRD_PLAIN)
    assert isinstance(mail, ParsedMail)
    assert mail.message_id == "<8a1f7c2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b@example.nl>"
    assert mail.subject == "Kwetsbaarheid in het meldformulier"
    assert mail.from_address == "pieter.jansen@example.nl"
    assert mail.from_name == "Pieter Jansen"
    assert mail.to == ["security@gemeente.example"]
    assert mail.cc == ["cert@gemeente.example"]
    assert mail.date == datetime(2026, 2, 3, 9, 12, 5, tzinfo=UTC)
    assert mail.date is not None and mail.date.tzinfo is not None
    # format=flowed: the soft line break after "Na " is joined back into one line.
    assert "op uw website. Na het invullen van de zoekterm" in mail.text
    assert "\r" not in mail.text
    assert mail.text.startswith("Beste CVD-team,\n\nIk heb een reflected XSS")
    assert "-- \nPieter Jansen" in mail.text
    assert not mail.text_was_html
    assert mail.attachments == []
    assert not mail.is_automatic
    assert mail.automatic_reason is None
    assert mail.problems == []
    assert mail.size == len(THUNDERBIRD_PLAIN)


def test_undeclared_8bit_windows_1252() -> None:
    # An old client that sends 8-bit text without any charset parameter.
    raw = (
        b"From: Kees de Boer <kees@example.nl>\n"
        b"To: security@gemeente.example\n"
        b"Subject: Lek in portaal\n"
        b"Date: Mon, 2 Feb 2026 21:03:44 +0100\n"
        b"Message-ID: <000a01dc1234$abcd$ef01@example.nl>\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: text/plain\n"
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n"
        b"Er is \xe9\xe9n lek in het portaal \x96 zie de bijlage \x80 0,00.\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "Er is één lek in het portaal – zie de bijlage € 0,00.\n"
    assert any("windows-1252" in problem for problem in mail.problems)


def test_undeclared_8bit_utf8_is_read_as_utf8() -> None:
    raw = (
        b"From: kees@example.nl\nSubject: x\nMessage-ID: <u8@example.nl>\n"
        b"Date: Mon, 2 Feb 2026 21:03:44 +0100\n\n"
        b"Er is \xc3\xa9\xc3\xa9n lek.\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "Er is één lek.\n"
    assert any("shown as utf-8" in problem for problem in mail.problems)


def test_iso_8859_1_declared_quoted_printable() -> None:
    raw = crlf(
        b"""From: "Hans van Dijk" <hans@example.be>
To: <security@gemeente.example>
Subject: Datalek
Date: Wed, 4 Feb 2026 08:00:00 +0100
Message-ID: <20260204080000.1234@example.be>
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Geachte heer/mevrouw,

Er staat =E9=E9n bestand met persoonsgegevens open: =
https://gemeente.example/export.csv

Groet, Hans
"""
    )
    mail = parse_mail(raw)
    assert (
        "Er staat één bestand met persoonsgegevens open: https://gemeente.example/export.csv"
        in (mail.text)
    )
    assert mail.from_name == "Hans van Dijk"
    assert mail.problems == []


def test_rfc2047_subject_and_from_name_q_and_b() -> None:
    raw_b = crlf(
        b"""From: =?UTF-8?B?SsOpcsO0bWUgRHVwb250?= <jerome@example.fr>
To: security@gemeente.example
Subject: =?UTF-8?B?S3dldHNiYWFyaGVpZCBpbiBoZXQgbWVsZGZvcm11bGllcg==?=
Date: Thu, 5 Feb 2026 14:30:00 +0000
Message-ID: <b-encoded@example.fr>
Content-Type: text/plain; charset=utf-8

body
"""
    )
    raw_q = crlf(
        b"""From: =?iso-8859-1?Q?J=E9r=F4me_Dupont?= <jerome@example.fr>
To: security@gemeente.example
Subject: =?utf-8?Q?Lek_in_=C3=A9=C3=A9n_formulier?=
 =?utf-8?Q?_=E2=80=93_dringend?=
Date: Thu, 5 Feb 2026 14:30:00 +0000
Message-ID: <q-encoded@example.fr>
Content-Type: text/plain; charset=utf-8

body
"""
    )
    b_mail = parse_mail(raw_b)
    q_mail = parse_mail(raw_q)
    assert b_mail.subject == "Kwetsbaarheid in het meldformulier"
    assert b_mail.from_name == "Jérôme Dupont"
    assert q_mail.subject == "Lek in één formulier – dringend"
    assert q_mail.from_name == "Jérôme Dupont"
    assert q_mail.from_address == b_mail.from_address == "jerome@example.fr"


def test_raw_8bit_header_and_control_characters_in_subject() -> None:
    raw = (
        b"From: Ren\xe9 <rene@example.nl>\n"
        b"Subject: Caf\xe9 \x1b[31mrood\x1b[0m \xe2\x80\xae gpj.exe\n"
        b"Message-ID: <ctl@example.nl>\n"
        b"Date: Thu, 5 Feb 2026 14:30:00 +0000\n"
        b"\n"
        b"hoi\n"
    )
    mail = parse_mail(raw)
    assert "\x1b" not in mail.subject
    assert "\u202e" not in mail.subject
    assert mail.subject.startswith("Caf")
    assert "rood" in mail.subject
    assert mail.from_name == "René"
    assert any("From header" in problem for problem in mail.problems)


# -- HTML and multipart ---------------------------------------------------------------------

OUTLOOK_HTML_ONLY = crlf(
    b"""From: "Vries, Anna de" <a.devries@bedrijf.example>
To: "security@gemeente.example" <security@gemeente.example>
Subject: Melding kwetsbaarheid
Thread-Topic: Melding kwetsbaarheid
Thread-Index: AdqW1234567890abcdefABCDEFGHIJ==
Date: Fri, 6 Feb 2026 09:15:22 +0000
Message-ID: <AM0PR07MB1234ABCD5678EF90@AM0PR07MB1234.eurprd07.prod.outlook.com>
Accept-Language: nl-NL, en-US
Content-Language: nl-NL
X-MS-Has-Attach:
Content-Type: text/html; charset="windows-1252"
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

<html xmlns:v=3D"urn:schemas-microsoft-com:vml" xmlns:o=3D"urn:schemas-micr=
osoft-com:office:office">
<head>
<meta http-equiv=3D"Content-Type" content=3D"text/html; charset=3Dwindows-1=
252">
<meta name=3D"Generator" content=3D"Microsoft Word 15 (filtered medium)">
<style><!--
/* Font Definitions */
@font-face
\t{font-family:"Cambria Math";
\tpanose-1:2 4 5 3 5 4 6 3 2 4;}
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext=3D"edit" spidmax=3D"1026" />
</xml><![endif]-->
</head>
<body lang=3D"NL" link=3D"#0563C1" vlink=3D"#954F72" style=3D"word-wrap:brea=
k-word">
<div class=3D"WordSection1">
<p class=3D"MsoNormal">Beste CVD-team,<o:p></o:p></p>
<p class=3D"MsoNormal"><o:p>&nbsp;</o:p></p>
<p class=3D"MsoNormal">Op <a href=3D"https://gemeente.example/afspraak?id=3D1=
23">de afsprakenpagina</a> kan ik afspraken van anderen inzien (IDOR). Zie=
 ook <a href=3D"https://gemeente.example/">https://gemeente.example</a>.<o:p>=
</o:p></p>
<ul style=3D"margin-top:0cm" type=3D"disc">
<li class=3D"MsoListParagraph">verander het id in de URL<o:p></o:p></li>
<li class=3D"MsoListParagraph">de gegevens van een ander verschijnen<o:p></o=
:p></li>
</ul>
<p class=3D"MsoNormal">Met vriendelijke groet,<br>Anna de Vries &#8211; Bedri=
jf B.V. =80<o:p></o:p></p>
</div>
</body>
</html>
"""
)


def test_outlook_html_only_becomes_readable_text() -> None:
    mail = parse_mail(OUTLOOK_HTML_ONLY)
    assert mail.text_was_html
    assert mail.from_name == "Vries, Anna de"
    text = mail.text
    assert text.startswith("Beste CVD-team,")
    assert "font-family" not in text and "Cambria" not in text and "<" not in text
    assert "shapedefaults" not in text
    assert (
        "Op de afsprakenpagina (https://gemeente.example/afspraak?id=123) kan ik afspraken" in text
    )
    assert "Zie ook https://gemeente.example." in text
    assert "- verander het id in de URL\n- de gegevens van een ander verschijnen" in text
    assert "Met vriendelijke groet,\nAnna de Vries – Bedrijf B.V. €" in text
    assert "\n\n\n" not in text
    assert mail.attachments == []


GMAIL_ALTERNATIVE = crlf(
    b"""MIME-Version: 1.0
Date: Sat, 7 Feb 2026 11:02:33 +0100
Message-ID: <CAK7sJ2b3Zy+ab12cd34ef56gh78=XYZ@mail.gmail.com>
Subject: Open redirect on login page
From: Sam Reporter <sam.reporter@gmail.com>
To: security@gemeente.example
Content-Type: multipart/alternative; boundary="000000000000c3a5a9061a2b7e3d"

--000000000000c3a5a9061a2b7e3d
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Hi,

The login page redirects to any URL given in the "next" parameter:
https://gemeente.example/login?next=3Dhttps://evil.example

Kind regards,
Sam

--000000000000c3a5a9061a2b7e3d
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr"><div>Hi,</div><div><br></div><div>The login page redirects=
 to any URL given in the &quot;next&quot; parameter:</div><div><a href=3D"ht=
tps://gemeente.example/login?next=3Dhttps://evil.example">https://gemeente.ex=
ample/login?next=3Dhttps://evil.example</a></div><div><br></div><div>Kind re=
gards,</div><div>Sam</div></div>

--000000000000c3a5a9061a2b7e3d--
"""
)


def test_multipart_alternative_prefers_plain() -> None:
    mail = parse_mail(GMAIL_ALTERNATIVE)
    assert not mail.text_was_html
    assert mail.text.startswith("Hi,\n\nThe login page redirects to any URL")
    assert "https://gemeente.example/login?next=https://evil.example" in mail.text
    # The HTML rendering of the same text is not an attachment.
    assert mail.attachments == []
    assert mail.problems == []


def test_multipart_alternative_html_only_part_used_when_no_plain() -> None:
    raw = GMAIL_ALTERNATIVE.replace(
        b'Content-Type: text/plain; charset="UTF-8"',
        b'Content-Type: text/x-unknown; charset="UTF-8"',
    )
    mail = parse_mail(raw)
    assert mail.text_was_html
    assert mail.text.startswith("Hi,\n\nThe login page redirects to any URL")
    assert [a.content_type for a in mail.attachments] == []


PDF_BYTES = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n"
    b"<< /Root 1 0 R >>\n%%EOF\n"
)
PGP_KEY_TEXT = (
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
    b"mDMEZbC1xRYJKwYBBAHaRw8BAQdAexampleexampleexampleexampleexample\n"
    b"=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
)

MIXED_WITH_ATTACHMENTS = crlf(
    b"""Content-Type: multipart/mixed; boundary="------------0Bx3YqLz8hQm4N2vKd1Jf5Rt"
Message-ID: <5e9f2a10-77b3-4c1e-8d9a-0f6b3c2d1e4a@example.org>
Date: Sun, 8 Feb 2026 16:40:12 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
From: Lisa Bakker <lisa@example.org>
To: security@gemeente.example
Subject: [CVD] SQL injection in zoekfunctie
Autocrypt: addr=lisa@example.org; keydata=mDMEZbC1xRYJKwYBBAHaRw8BAQdA

This is a multi-part message in MIME format.
--------------0Bx3YqLz8hQm4N2vKd1Jf5Rt
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 7bit

Beste,

In de bijlage het rapport over de SQL injection in de zoekfunctie.

Lisa
--------------0Bx3YqLz8hQm4N2vKd1Jf5Rt
Content-Type: application/pdf; name="rapport zoekfunctie.pdf"
Content-Disposition: attachment; filename="rapport zoekfunctie.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKdHJhaWxl
cgo8PCAvUm9vdCAxIDAgUiA+PgolJUVPRgo=
--------------0Bx3YqLz8hQm4N2vKd1Jf5Rt
Content-Type: application/pgp-keys; name="OpenPGP_0x1A2B3C4D5E6F7A8B.asc"
Content-Disposition: attachment; filename="OpenPGP_0x1A2B3C4D5E6F7A8B.asc"
Content-Description: OpenPGP public key
Content-Transfer-Encoding: quoted-printable

-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEZbC1xRYJKwYBBAHaRw8BAQdAexampleexampleexampleexampleexample
=3Dabcd
-----END PGP PUBLIC KEY BLOCK-----

--------------0Bx3YqLz8hQm4N2vKd1Jf5Rt--
"""
)


def test_mixed_with_pdf_and_pgp_keys() -> None:
    mail = parse_mail(MIXED_WITH_ATTACHMENTS)
    assert mail.text.startswith("Beste,\n\nIn de bijlage het rapport")
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("rapport zoekfunctie.pdf", "application/pdf"),
        ("OpenPGP_0x1A2B3C4D5E6F7A8B.asc", "application/pgp-keys"),
    ]
    pdf = mail.attachments[0]
    assert pdf.size == len(PDF_BYTES)
    assert pdf.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert mail.problems == []

    payloads = attachment_payloads(MIXED_WITH_ATTACHMENTS)
    assert [info for info, _ in payloads] == mail.attachments
    assert payloads[0][1] == PDF_BYTES
    assert payloads[1][1].replace(b"\r\n", b"\n") == PGP_KEY_TEXT
    for info, data in payloads:
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_attachment_filename_cannot_name_a_path() -> None:
    raw = MIXED_WITH_ATTACHMENTS.replace(
        b'filename="rapport zoekfunctie.pdf"', b'filename="..\\\\..\\\\..\\\\etc/passwd"'
    )
    mail = parse_mail(raw)
    assert mail.attachments[0].filename == "passwd"


FORWARD_AS_ATTACHMENT = crlf(
    b"""From: Mark Smit <mark@example.net>
To: security@gemeente.example
Subject: Fwd: Phishingmail uit naam van de gemeente
Date: Mon, 9 Feb 2026 10:00:00 +0100
Message-ID: <fwd-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=-fwd-boundary"

--=-fwd-boundary
Content-Type: text/plain; charset=utf-8

Deze mail kreeg ik vanochtend, de link wijst naar een nagemaakte inlogpagina.

--=-fwd-boundary
Content-Type: message/rfc822
Content-Disposition: attachment

Return-Path: <noreply@gemeente-example.top>
From: "Gemeente" <noreply@gemeente-example.top>
To: mark@example.net
Subject: Uw belastingaanslag
Date: Mon, 9 Feb 2026 07:12:00 +0100
Message-ID: <phish-123@gemeente-example.top>
Content-Type: text/plain; charset=utf-8

Log in op https://gemeente-example.top/login om uw aanslag te bekijken.

--=-fwd-boundary--
"""
)


def test_nested_message_rfc822_is_one_attachment() -> None:
    mail = parse_mail(FORWARD_AS_ATTACHMENT)
    assert mail.text.startswith("Deze mail kreeg ik vanochtend")
    # The forwarded mail's text is not taken for the reporter's own.
    assert "belastingaanslag" not in mail.text
    assert len(mail.attachments) == 1
    forwarded = mail.attachments[0]
    assert forwarded.filename == "forwarded.eml"
    assert forwarded.content_type == "message/rfc822"
    ((info, data),) = attachment_payloads(FORWARD_AS_ATTACHMENT)
    assert info == forwarded
    inner = parse_mail(data)
    assert inner.message_id == "<phish-123@gemeente-example.top>"
    assert inner.subject == "Uw belastingaanslag"
    assert "https://gemeente-example.top/login" in inner.text


def test_inline_pgp_text_is_left_as_is() -> None:
    # Even with format=flowed, the signed text keeps its trailing spaces (the signature
    # covers them); verification happens elsewhere.
    raw = crlf(
        b"""From: Pieter Jansen <pieter.jansen@example.nl>
To: security@gemeente.example
Subject: Ondertekende melding
Message-ID: <pgp-inline@example.nl>
Date: Tue, 10 Feb 2026 08:00:00 +0100
Content-Type: text/plain; charset=UTF-8; format=flowed

-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Het lek zit in het\x20
meldformulier.
-----BEGIN PGP SIGNATURE-----

iHUEARYIAB0WIQTexampleexampleexample
=AbCd
-----END PGP SIGNATURE-----
"""
    )
    mail = parse_mail(raw)
    assert "Het lek zit in het \nmeldformulier." in mail.text
    assert mail.text.startswith("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n")


# -- missing and broken headers -------------------------------------------------------------


def test_missing_message_id_is_synthesised_deterministically() -> None:
    raw = b"From: a@example.nl\nSubject: geen id\nDate: Mon, 9 Feb 2026 10:00:00 +0100\n\nhoi\n"
    first = parse_mail(raw)
    second = parse_mail(raw)
    other = parse_mail(raw.replace(b"hoi", b"hallo"))
    expected = f"<{hashlib.sha256(raw).hexdigest()}@cvdbot.invalid>"
    assert first.message_id == second.message_id == expected
    assert other.message_id != first.message_id
    assert "no Message-ID header" in first.problems


def test_empty_message_id_is_synthesised() -> None:
    raw = b"From: a@example.nl\nMessage-ID: \nSubject: x\n\nhoi\n"
    mail = parse_mail(raw)
    assert mail.message_id.endswith("@cvdbot.invalid>")
    assert any("Message-ID" in problem for problem in mail.problems)


def test_bare_message_id_is_normalised() -> None:
    raw = b"From: a@example.nl\nMessage-ID:  abc.123@host.example \nSubject: x\n\nhoi\n"
    assert parse_mail(raw).message_id == "<abc.123@host.example>"


def test_missing_from_and_date() -> None:
    raw = b"To: security@gemeente.example\nSubject: anoniem\nMessage-ID: <anon@x.example>\n\nlek\n"
    mail = parse_mail(raw)
    assert mail.from_address is None
    assert mail.from_name is None
    assert mail.date is None
    assert "no From header" in mail.problems
    assert "no Date header" in mail.problems
    assert mail.text == "lek\n"


def test_unparseable_from() -> None:
    raw = b"From: Jan zonder adres\nSubject: x\nMessage-ID: <f@x.example>\n\nlek\n"
    mail = parse_mail(raw)
    assert mail.from_address is None
    assert "no usable address in the From header" in mail.problems


def test_garbage_date() -> None:
    raw = (
        b"From: a@example.nl\nSubject: x\nMessage-ID: <d@x.example>\n"
        b"Date: gisteren rond een uur of drie\n\nlek\n"
    )
    mail = parse_mail(raw)
    assert mail.date is None
    assert "unparseable Date header" in mail.problems


def test_date_without_zone_is_utc() -> None:
    raw = b"From: a@example.nl\nSubject: x\nDate: Mon, 9 Feb 2026 10:00:00 -0000\n\nlek\n"
    assert parse_mail(raw).date == datetime(2026, 2, 9, 10, 0, tzinfo=UTC)


def test_missing_subject() -> None:
    mail = parse_mail(b"From: a@example.nl\nMessage-ID: <s@x.example>\n\nlek\n")
    assert mail.subject == ""
    assert "no Subject header" in mail.problems


def test_unknown_charset_falls_back() -> None:
    raw = (
        b"From: a@example.nl\nSubject: x\nMessage-ID: <c@x.example>\n"
        b"Content-Type: text/plain; charset=x-foo\n\nEr is \xe9\xe9n lek\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "Er is één lek\n"
    assert "undecodable charset 'x-foo' in part 1; shown as windows-1252" in mail.problems


def test_wrong_declared_charset_falls_back() -> None:
    raw = (
        b"From: a@example.nl\nSubject: x\nMessage-ID: <c@x.example>\n"
        b"Content-Type: text/plain; charset=us-ascii\n\nEr is \xc3\xa9\xc3\xa9n lek\n"
    )
    mail = parse_mail(raw)
    assert mail.text == "Er is één lek\n"
    assert "text in part 1 is not valid us-ascii; shown as utf-8" in mail.problems


def test_malformed_mime_missing_boundary() -> None:
    raw = crlf(
        b"""From: a@example.nl
Subject: kapot
Message-ID: <nb@x.example>
MIME-Version: 1.0
Content-Type: multipart/mixed

De melding staat hier gewoon in de tekst.
"""
    )
    mail = parse_mail(raw)
    assert "De melding staat hier gewoon in de tekst." in mail.text
    assert any(
        p.startswith("malformed MIME: ") and "NoBoundaryInMultipartDefect" in p
        for p in mail.problems
    )


def test_malformed_mime_truncated_multipart() -> None:
    truncated = MIXED_WITH_ATTACHMENTS[: MIXED_WITH_ATTACHMENTS.index(b"cgo8PCAvUm9vdC")]
    mail = parse_mail(truncated)
    assert mail.text.startswith("Beste,\n\nIn de bijlage het rapport")
    assert [a.filename for a in mail.attachments] == ["rapport zoekfunctie.pdf"]
    assert any(
        p.startswith("malformed MIME: ") and "CloseBoundaryNotFoundDefect" in p
        for p in mail.problems
    )


def test_malformed_mime_boundary_never_appears() -> None:
    raw = (
        b"From: a@example.nl\nSubject: x\nMessage-ID: <nf@x.example>\n"
        b'Content-Type: multipart/alternative; boundary="nergens"\n\nalleen tekst\n'
    )
    mail = parse_mail(raw)
    assert "alleen tekst" in mail.text
    assert any("StartBoundaryNotFoundDefect" in p for p in mail.problems)


def test_deeply_nested_mime_does_not_fail() -> None:
    raw = b"From: a@example.nl\nSubject: diep\nContent-Type: multipart/mixed; boundary=b0\n\n"
    depth = 3000
    for level in range(depth):
        raw += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1)
    raw += b"--b%d\nContent-Type: text/plain\n\nhier\n" % depth
    mail = parse_mail(raw)
    assert mail.subject == "diep"
    assert mail.from_address == "a@example.nl"
    assert "hier" in mail.text


# -- automatic mail -------------------------------------------------------------------------


def test_auto_submitted_auto_reply() -> None:
    raw = crlf(
        b"""From: Pieter Jansen <pieter.jansen@example.nl>
To: security@gemeente.example
Subject: Re: [CVD-2026-0007] Kwetsbaarheid in het meldformulier
Date: Tue, 10 Feb 2026 08:00:00 +0100
Message-ID: <auto-1@example.nl>
In-Reply-To: <cvd-2026-0007-ack@gemeente.example>
Auto-Submitted: auto-replied
Content-Type: text/plain; charset=utf-8

Ik ben tot en met 20 februari afwezig.
"""
    )
    mail = parse_mail(raw)
    assert mail.is_automatic
    assert mail.auto_submitted == "auto-replied"
    assert mail.automatic_reason is not None and "Auto-Submitted" in mail.automatic_reason


def test_auto_submitted_no_is_human() -> None:
    raw = THUNDERBIRD_PLAIN.replace(
        b"MIME-Version: 1.0", b"Auto-Submitted: no\r\nMIME-Version: 1.0"
    )
    mail = parse_mail(raw)
    assert mail.auto_submitted == "no"
    assert not mail.is_automatic


def test_outlook_out_of_office() -> None:
    raw = crlf(
        b"""From: "Vries, Anna de" <a.devries@bedrijf.example>
To: "security@gemeente.example" <security@gemeente.example>
Subject: Automatisch antwoord: [CVD-2026-0012] Ontvangstbevestiging
Thread-Topic: [CVD-2026-0012] Ontvangstbevestiging
Date: Wed, 11 Feb 2026 12:00:03 +0000
Message-ID: <AM0PR07MB9999OOF@AM0PR07MB9999.eurprd07.prod.outlook.com>
In-Reply-To: <cvd-2026-0012-ack@gemeente.example>
X-MS-Has-Attach:
X-MS-TNEF-Correlator:
X-Auto-Response-Suppress: All
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable
MIME-Version: 1.0

Ik ben afwezig tot maandag. Voor dringende zaken kunt u bellen met de servi=
cedesk.
"""
    )
    mail = parse_mail(raw)
    assert mail.is_automatic
    assert mail.automatic_reason == "automatic reply or bounce (subject)"
    assert find_case_ids(mail.subject) == ["CVD-2026-0012"]


DSN_BOUNCE = crlf(
    b"""Return-Path: <>
Delivered-To: security@gemeente.example
From: MAILER-DAEMON@mx.gemeente.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: security@gemeente.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1A2B3C4D.1707570000/mx.gemeente.example"
Content-Transfer-Encoding: 8bit
Message-Id: <20260210120000.4F1A2B3C4D@mx.gemeente.example>
Date: Tue, 10 Feb 2026 13:00:00 +0100 (CET)

This is a MIME-encapsulated message.

--4F1A2B3C4D.1707570000/mx.gemeente.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.gemeente.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--4F1A2B3C4D.1707570000/mx.gemeente.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.gemeente.example
Arrival-Date: Tue, 10 Feb 2026 12:59:58 +0100 (CET)

Final-Recipient: rfc822; nobody@example.invalid
Action: failed
Status: 5.1.1

--4F1A2B3C4D.1707570000/mx.gemeente.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: security@gemeente.example
To: nobody@example.invalid
Subject: [CVD-2026-0003] Ontvangstbevestiging
Message-ID: <cvd-2026-0003-ack@gemeente.example>

--4F1A2B3C4D.1707570000/mx.gemeente.example--
"""
)


def test_dsn_bounce() -> None:
    mail = parse_mail(DSN_BOUNCE)
    assert mail.is_automatic
    assert mail.from_address == "mailer-daemon@mx.gemeente.example"
    assert mail.text.startswith("This is the mail system at host mx.gemeente.example.")
    assert [a.content_type for a in mail.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    delivery_status = attachment_payloads(DSN_BOUNCE)[0][1]
    assert b"Final-Recipient: rfc822; nobody@example.invalid" in delivery_status


def test_dsn_is_automatic_by_structure_alone() -> None:
    raw = DSN_BOUNCE.replace(b"Return-Path: <>\r\n", b"").replace(
        b"Auto-Submitted: auto-replied\r\n", b""
    )
    raw = raw.replace(b"MAILER-DAEMON@mx", b"postmaster@mx").replace(
        b"Subject: Undelivered Mail Returned to Sender", b"Subject: Bericht"
    )
    mail = parse_mail(raw)
    assert mail.is_automatic
    assert mail.automatic_reason == "delivery or read report (multipart/report)"


def test_list_mail() -> None:
    raw = crlf(
        b"""From: Nieuwsbrief <nieuws@lists.example.org>
To: security@gemeente.example
Subject: Nieuwsbrief februari
Date: Wed, 11 Feb 2026 12:00:03 +0000
Message-ID: <list-1@lists.example.org>
List-Id: Nieuwsbrief <nieuws.lists.example.org>
List-Unsubscribe: <mailto:nieuws-leave@lists.example.org>
Precedence: list
Content-Type: text/plain; charset=utf-8

Het laatste nieuws.
"""
    )
    mail = parse_mail(raw)
    assert mail.is_automatic
    assert mail.automatic_reason is not None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"X-Autoreply: yes", "X-Autoreply header"),
        (b"X-Autorespond: Vacation", "X-Autorespond header"),
        (b"Precedence: bulk", "Precedence: bulk"),
        (b"Precedence: auto_reply", "Precedence: auto_reply"),
        (b"Return-Path: <>", "bounce (empty Return-Path)"),
        (
            b"List-Unsubscribe: <https://lists.example/unsub>",
            "mailing list mail (List-Unsubscribe)",
        ),
    ],
)
def test_automatic_headers(header: bytes, reason: str) -> None:
    raw = b"From: x@example.nl\nSubject: Re: melding\nMessage-ID: <h@x>\n" + header + b"\n\nbody\n"
    mail = parse_mail(raw)
    assert mail.is_automatic
    assert mail.automatic_reason == reason


def test_mailer_daemon_without_other_signs() -> None:
    raw = b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\nSubject: Bericht\n\nx\n"
    assert parse_mail(raw).automatic_reason == "bounce (From MAILER-DAEMON)"


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: [CVD-2026-0001] Ontvangen",
        "Automatic reply: Your report",
        "Afwezigheidsbericht",
        "Undeliverable: [CVD-2026-0001] Ontvangen",
        "Delivery Status Notification (Failure)",
    ],
)
def test_automatic_subjects(subject: str) -> None:
    raw = f"From: x@example.nl\nSubject: {subject}\nMessage-ID: <s@x>\n\nbody\n".encode()
    assert parse_mail(raw).is_automatic


@pytest.mark.parametrize(
    "subject",
    [
        "Undeliverable emails leak internal hostnames",
        "Re: [CVD-2026-0001] Out of office replies disclose staff names",
        "XSS in afwezigheidsformulier",
    ],
)
def test_human_subjects_are_not_automatic(subject: str) -> None:
    raw = f"From: x@example.nl\nSubject: {subject}\nMessage-ID: <s@x>\n\nbody\n".encode()
    mail = parse_mail(raw)
    assert not mail.is_automatic
    assert mail.automatic_reason is None


# -- threading ids --------------------------------------------------------------------------


def test_references_and_in_reply_to() -> None:
    raw = crlf(
        b"""From: Pieter Jansen <pieter.jansen@example.nl>
To: security@gemeente.example
Subject: Re: [CVD-2026-0007] Ontvangstbevestiging
Date: Tue, 10 Feb 2026 08:00:00 +0100
Message-ID: <reply-2@example.nl>
In-Reply-To: <cvd-2026-0007-ack@gemeente.example> (Security team's message of
 "Mon, 9 Feb 2026")
References: <8a1f7c2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b@example.nl>
 <cvd-2026-0007-ack@gemeente.example>
\t<cvd-2026-0007-ack@gemeente.example> <>
Content-Type: text/plain; charset=utf-8

Dank, ik wacht de beoordeling af.
"""
    )
    mail = parse_mail(raw)
    assert mail.in_reply_to == ["<cvd-2026-0007-ack@gemeente.example>"]
    assert mail.references == [
        "<8a1f7c2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b@example.nl>",
        "<cvd-2026-0007-ack@gemeente.example>",
    ]


# -- parse_message --------------------------------------------------------------------------


def test_parse_message_on_inner_message() -> None:
    inner = BytesParser(policy=policy.default).parsebytes(GMAIL_ALTERNATIVE)
    assert isinstance(inner, EmailMessage)
    mail = parse_message(inner, raw_size=1234, problems_prefix=["decrypted from PGP/MIME"])
    assert mail.problems[0] == "decrypted from PGP/MIME"
    assert mail.size == 1234
    assert mail.subject == "Open redirect on login page"
    assert mail.text.startswith("Hi,")


def test_parse_message_synthesises_stable_id() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.nl"
    msg["Subject"] = "binnenste bericht"
    msg.set_content("geheime melding\n")
    first = parse_message(msg, raw_size=10)
    second = parse_message(msg, raw_size=10)
    assert first.message_id == second.message_id
    assert re.fullmatch(r"<[0-9a-f]{64}@cvdbot\.invalid>", first.message_id)
    assert first.text == "geheime melding\n"


# -- not a mail -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n\r\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
        bytes(range(256)) * 4,
        b"Dit is gewoon een tekstbestand.\nZonder kopregels.\n",
        b"Note: dit lijkt op een kopregel\n\nmaar is het niet.\n",
    ],
)
def test_not_a_mail(raw: bytes) -> None:
    with pytest.raises(NotAMailError):
        parse_mail(raw)
    with pytest.raises(NotAMailError):
        attachment_payloads(raw)


def test_mbox_from_line_is_accepted() -> None:
    raw = b"From pieter@example.nl Tue Feb  3 10:12:09 2026\n" + THUNDERBIRD_PLAIN
    assert parse_mail(raw).subject == "Kwetsbaarheid in het meldformulier"


# -- fuzzing --------------------------------------------------------------------------------

VALID_MAILS = [
    THUNDERBIRD_PLAIN,
    OUTLOOK_HTML_ONLY,
    GMAIL_ALTERNATIVE,
    MIXED_WITH_ATTACHMENTS,
    FORWARD_AS_ATTACHMENT,
    DSN_BOUNCE,
]


@st.composite
def mutated_mails(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_MAILS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        chunk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=16),
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\n\n",
                        b"--",
                        b"=?utf-8?b?",
                        b"?=",
                        b"<",
                        b">",
                        b":",
                        b'"',
                        b"\x00",
                        b"\xff",
                        b"boundary=",
                        b"charset=x-foo",
                        b"multipart/",
                        b"message/rfc822",
                        b"base64",
                        b"=\r\n",
                        b"\t",
                        b"=?",
                    ]
                ),
            )
        )
        if action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position : position + len(chunk)]
        elif action == "replace":
            data[position : position + len(chunk)] = chunk
        else:
            del data[position:]
    return bytes(data)


def _check_never_raises_but_not_a_mail(raw: bytes) -> None:
    try:
        mail = parse_mail(raw)
    except NotAMailError:
        return
    # Everything must survive a JSON round trip (storage, Matrix): no lone surrogates.
    assert ParsedMail.model_validate_json(mail.model_dump_json()) == mail
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert mail.date is None or mail.date.tzinfo is not None
    assert "\r" not in mail.text
    payloads = attachment_payloads(raw)
    assert [info for info, _ in payloads] == mail.attachments


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _check_never_raises_but_not_a_mail(raw)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_mails())
def test_fuzz_mutated_mails(raw: bytes) -> None:
    _check_never_raises_but_not_a_mail(raw)


_FIELD_NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Return-Path",
    "Precedence",
]
_TRICKY_VALUES = [
    b"=?utf-8?q?=C3?=",
    b"=?unknown-8bit?b?AAAA?=",
    b"=?utf-8?b?w6nDqW4=?= =?iso-8859-1?q?=E9?=",
    b"<>",
    b'"unterminated <a@b.example>',
    b"(comment <a@b>) , ,, @ ; : group: ;",
    b'multipart/mixed; boundary=""',
    b"multipart/alternative; boundary=x",
    b"text/plain; charset=idna",
    b"text/plain; charset=utf-7",
    b"text/plain; charset=unicode_escape",
    b"text/plain; charset*=''%ff%fe",
    b"text/html; charset=x-foo; format=flowed; delsp=yes",
    b"attachment; filename*=utf-8''..%2F..%2Fpasswd",
    b"Mon, 99 Foo 99999999999 99:99:99 +9999",
    b"Sat, 31 Dec 9999 23:59:59 -1200",
    b"base64",
    b"quoted-printable",
]


@st.composite
def header_soup(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(min_value=1, max_value=10))):
        name = draw(st.sampled_from(_FIELD_NAMES)).encode()
        value = draw(
            st.one_of(
                st.sampled_from(_TRICKY_VALUES),
                st.text(max_size=60).map(lambda text: text.encode("utf-8")),
                st.binary(max_size=40),
            )
        )
        lines.append(name + b": " + value)
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from([b"x=\n=C3=A9=\n", b"w6nDqW4=\n====\n", b"--x\n\n--x--\n"]),
        )
    )
    separator = draw(st.sampled_from([b"\n", b"\r\n"]))
    return separator.join(lines) + separator + separator + body


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(header_soup())
def test_fuzz_header_soup(raw: bytes) -> None:
    _check_never_raises_but_not_a_mail(raw)


# -- the HTML body path (bot.mailin.html_text) -----------------------------------------------------


def test_html_to_text_structure() -> None:
    html = (
        "<html><head><title>Melding</title><style>p {color: red}</style></head><body>"
        "<h1>Lek</h1><p>Eerste&nbsp;alinea met   <b>vet</b>\n en <i>schuin</i>.</p>"
        "<p>Tweede<br>regel</p><p></p><p></p>"
        "<ol><li>stap een</li><li>stap twee<ul><li>detail</li></ul></li></ol>"
        "<blockquote><p>geciteerd</p><p>nog een</p></blockquote>"
        "<pre>  GET /x HTTP/1.1\n  Host: a</pre>"
        "<table><tr><td>naam</td><td>waarde</td></tr></table>"
        "<script>document.write('nee')</script>einde &lt;script&gt; &amp; &#8364;"
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Lek\n\n"
        "Eerste alinea met vet en schuin.\n\n"
        "Tweede\nregel\n\n"
        "- stap een\n- stap twee\n  - detail\n\n"
        "> geciteerd\n>\n> nog een\n\n"
        "  GET /x HTTP/1.1\n  Host: a\n\n"
        "naam waarde\n\n"
        "einde <script> & €"
    )


def test_html_to_text_links() -> None:
    html = (
        '<p>Zie <a href="https://a.example/x">hier</a>, <a href="https://b.example">'
        'https://b.example/</a>, <a href="mailto:x@y.example?subject=hoi">x@y.example</a>, '
        '<a href="javascript:alert(1)">klik</a>, <a href="#top">boven</a> en '
        '<a href="https://c.example/logo"><img src="cid:logo"></a></p>'
    )
    assert html_to_text(html) == (
        "Zie hier (https://a.example/x), https://b.example/, x@y.example, klik, boven en "
        "https://c.example/logo"
    )


def test_html_to_text_head_without_end_tag_and_broken_markup() -> None:
    assert html_to_text("<head><meta charset=utf-8><p>tekst") == "tekst"
    assert html_to_text("<head><title>t</title>\n  Hallo <b>wereld</b>") == "Hallo wereld"
    assert html_to_text("<![foo[ bar ]]>na <![if !supportLists]>-<![endif]> lijst") == (
        "na - lijst"
    )
    assert html_to_text("<a href='https://x.example'>open link") == (
        "open link (https://x.example)"
    )
    assert html_to_text("<style/><ul/><blockquote/>zichtbaar<br/>ook") == "zichtbaar\nook"
    assert html_to_text("") == ""


def test_sanitize_html_allow_list() -> None:
    html = (
        '<p onclick="steal()">Hallo <b>wereld</b> <a href="javascript:alert(1)">x</a> '
        '<a href="https://ok.example/" target="_blank">ok</a>'
        "<script>bad()</script><style>p{}</style><img src=x onerror=alert(1)>"
        "<iframe src=https://evil.example></iframe></p>"
    )
    cleaned = sanitize_html(html)
    assert "onclick" not in cleaned and "script" not in cleaned and "bad()" not in cleaned
    assert "javascript:" not in cleaned and "<img" not in cleaned and "iframe" not in cleaned
    assert "target" not in cleaned
    assert '<a href="https://ok.example/" rel="noopener noreferrer">ok</a>' in cleaned
    assert "<p>Hallo <b>wereld</b>" in cleaned
