"""Tests for bot.mailin.language: realistic Dutch and English report snippets, and the fallbacks."""

from __future__ import annotations

import pytest

from bot.mailin.language import detect_language, strip_quotes_and_signature

DUTCH_REPORTS = [
    # Short ones.
    "Zie bijlage voor de details van het lek.",
    "Hallo, ik heb een XSS gevonden op jullie website.",
    "Beste, de link in mijn vorige mail werkt niet meer. Groet, Sanne",
    # Dutch prose full of English technical terms, URLs and payloads.
    (
        "Beste CVD-team,\n\n"
        "Op https://www.gemeente.example/zoeken?q=<script>alert(document.cookie)</script> "
        "is een reflected Cross-Site Scripting (XSS) kwetsbaarheid aanwezig. De parameter q "
        "wordt zonder output encoding in de response gezet. Proof of Concept:\n\n"
        "GET /zoeken?q=%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\n"
        "Host: www.gemeente.example\n\n"
        "Impact: session hijacking van ingelogde medewerkers.\n\n"
        "Met vriendelijke groet,\nJeroen"
    ),
    (
        "Hoi,\n\nIn de login API (POST /api/v1/auth) zit een SQL injection. Met de payload "
        "' OR 1=1 -- in het username veld krijg je een 200 OK en een geldige JWT token. "
        "Ik heb verder niets gedownload of aangepast.\n\nGroeten,\nMila"
    ),
    (
        "Geachte heer/mevrouw,\n\nHierbij meld ik een kwetsbaarheid in uw parkeerapp. De "
        "endpoint https://api.parkeren.example/v2/vergunning/{id} heeft geen access control "
        "(IDOR), waardoor ik kentekens en adressen van andere gebruikers kan inzien.\n\n"
        "Ik hoor graag of u de melding heeft ontvangen."
    ),
    (
        "Goedemorgen,\n\nDe S3 bucket gemeente-backups staat public readable. Daarin staan "
        "database dumps (.sql.gz) met persoonsgegevens. Graag zo snel mogelijk dichtzetten.\n"
        "\n--\nTim de Graaf\nSecurity Researcher | Bug Bounty Hunter\nhttps://timdegraaf.example"
    ),
    (
        "Dag team, bij het wachtwoord vergeten formulier kan ik via user enumeration zien "
        "welke e-mailadressen een account hebben. De response is anders voor bestaande "
        'accounts ("Email sent") dan voor niet bestaande ("User not found").'
    ),
    (
        "Beste,\n\nJullie mailserver mail.gemeente.example ondersteunt nog TLS 1.0 en de "
        "SPF record staat op ~all in plaats van -all. Ook ontbreekt DMARC. Dit maakt "
        "spoofing van uw domein mogelijk.\n\nVriendelijke groeten"
    ),
    (
        "Ik heb gemerkt dat op https://gemeente.example/.git/config de git repository "
        "openstaat. Hiermee kan iemand de volledige broncode downloaden, inclusief "
        "credentials in config.php."
    ),
    # A Dutch reply with the English original quoted below it.
    (
        "Dank voor de snelle reactie! Ik wacht de fix af en deel niets tot die tijd.\n\n"
        "Op di 10 feb 2026 om 10:15 schreef CVD Gemeente <security@gemeente.example>:\n"
        "> Thank you for your report. We have received it and will assess it within\n"
        "> five working days. Please do not share the details with anyone.\n"
    ),
    (
        "Hallo,\n\nBij het uploaden van een profielfoto wordt het bestandstype niet "
        "gecontroleerd. Een .php bestand wordt gewoon uitgevoerd (remote code execution). "
        "Zie de screenshot in de bijlage.\n\nMvg,\nAhmed"
    ),
    "Er zit een open redirect in de uitlog link: /logout?next=https://evil.example",
]

ENGLISH_REPORTS = [
    # Short ones.
    "Hi, I found an XSS on your login page.",
    "Please see the attached report.",
    "Thanks, I will wait for the fix.",
    (
        "Hello,\n\nI would like to report a stored cross-site scripting vulnerability in the "
        "contact form at https://www.gemeente.example/contact. The message field is rendered "
        "without escaping in the admin panel.\n\nBest regards,\nAlex"
    ),
    (
        "Dear security team,\n\nWhile testing your public API I noticed that "
        "GET /api/v1/users/{id} returns the full profile of any user, including their home "
        "address. No authentication is required.\n\nKind regards"
    ),
    (
        "Hi team, your WordPress installation exposes /wp-json/wp/v2/users, which lists all "
        "usernames. Combined with the missing rate limit on xmlrpc.php this allows brute "
        "force attacks."
    ),
    (
        "Hello,\n\nThe subdomain oud.gemeente.example points to an unclaimed Azure app "
        "service, so anyone can take it over (subdomain takeover). I have not claimed it.\n\n"
        "Cheers,\nPriya"
    ),
    (
        "Dear Sir/Madam,\n\nI am a security researcher and I found that your server "
        "discloses its version in the headers. Is there a bug bounty for this issue?"
    ),
    # An English report quoting Dutch text from the page.
    (
        "Hello,\n\nAfter submitting the form with a payload in the name field, the page "
        'shows the message "Uw aanvraag is ontvangen en wordt zo snel mogelijk in '
        'behandeling genomen door een van onze medewerkers" and then executes the '
        "script. The same happens on the page where you can change your details.\n\n"
        "Regards,\nJohn"
    ),
    (
        "Hi,\n\nThe page Mijn gegevens wijzigen leaks the session token in the URL. "
        "The button labelled Opslaan sends it to a third party analytics script.\n\n"
        "Thanks"
    ),
    # An English reply with a Dutch original quoted below it (Outlook style, no ">").
    (
        "Thank you, I can confirm that the issue has been fixed.\n\n"
        "From: CVD Gemeente <security@gemeente.example>\n"
        "Sent: Tuesday, February 10, 2026 10:15 AM\n"
        "To: John <john@example.com>\n"
        "Subject: [CVD-2026-0007] Opgelost\n\n"
        "Beste melder, het lek is gedicht. Kunt u dit bevestigen? Met vriendelijke groet\n"
    ),
    (
        "Hey there, I think the SSL certificate on mail.gemeente.example expired "
        "yesterday, and users now get a warning when they log in to webmail."
    ),
]


@pytest.mark.parametrize("text", DUTCH_REPORTS)
def test_dutch_reports(text: str) -> None:
    # The English default proves the Dutch verdict comes from the text itself.
    assert detect_language(text, default="en") == "nl"


@pytest.mark.parametrize("text", ENGLISH_REPORTS)
def test_english_reports(text: str) -> None:
    assert detect_language(text, default="nl") == "en"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n  ",
        "XSS",
        "https://gemeente.example/zoeken?q=<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "CVE-2024-3094 CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "is in over was",
        "Zie the",
        "> Beste team, dit is alleen een citaat van een eerdere mail.\n> Met groet",
    ],
)
def test_short_or_ambiguous_text_gives_default(text: str) -> None:
    assert detect_language(text, default="nl") == "nl"
    assert detect_language(text, default="en") == "en"


def test_default_default_is_dutch() -> None:
    assert detect_language("") == "nl"


def test_quoted_text_and_signature_are_ignored() -> None:
    text = (
        "Thanks, I will wait for your answer.\n\n"
        "> Beste melder, wij hebben uw melding ontvangen en nemen deze in behandeling.\n"
        "> Wij nemen binnen vijf werkdagen contact met u op over de beoordeling.\n"
        "-- \n"
        "Met vriendelijke groet, Jan de Vries, van de afdeling ICT van de gemeente\n"
    )
    assert detect_language(text, default="nl") == "en"


def test_strip_quotes_and_signature() -> None:
    text = "eigen tekst\r\n> geciteerd\r\nnog meer\r\n-- \r\nhandtekening\r\n"
    assert strip_quotes_and_signature(text) == "eigen tekst\nnog meer"


def test_lone_from_line_is_part_of_the_report() -> None:
    # A spoofing report quoting a header is not a reply history.
    text = (
        "Ik kon een mail versturen met\nFrom: burgemeester@gemeente.example\n"
        "en die kwam gewoon aan in de inbox van een medewerker, zonder waarschuwing."
    )
    assert "zonder waarschuwing" in strip_quotes_and_signature(text)
    assert detect_language(text, default="en") == "nl"
