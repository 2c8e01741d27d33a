"""The policy's requirements check and the hosts/URLs a report names
(bot/mailin/report_check.py)."""

from __future__ import annotations

from bot.mailin.report_check import (
    MISSING_LABELS,
    Evidence,
    check_report,
    extract_targets,
    is_no_reply,
    missing_text,
    reachable_address,
)

COMPLETE_EN = """Hello,

The search page https://parkeren.haaksbergen.example/zoeken?q=test echoes the q
parameter without encoding, so a script in the link runs in the visitor's browser.

Kind regards,
Sam
"""


def test_complete_report_with_address() -> None:
    evidence = check_report(COMPLETE_EN, reporter_address="sam@finder.example")
    assert evidence == Evidence(contact=True, target=True, description=True)
    assert evidence.missing == []


def test_anonymous_report_lacks_contact_unless_the_text_gives_one() -> None:
    assert check_report(COMPLETE_EN, reporter_address=None).missing == ["contact"]
    with_mail = COMPLETE_EN + "\nReach me at sam.finder@proton.example\n"
    assert check_report(with_mail, reporter_address=None).missing == []
    with_phone = COMPLETE_EN + "\nBel me: 06-12345678\n"
    assert check_report(with_phone, reporter_address=None).missing == []
    international = COMPLETE_EN + "\nTelefoon +31 (0)53 573 45 67\n"
    assert check_report(international, reporter_address=None).missing == []


def test_the_bots_own_address_is_no_contact() -> None:
    text = COMPLETE_EN + "\nI mailed security@haaksbergen.example before.\n"
    evidence = check_report(
        text, reporter_address=None, ignore_addresses=["security@haaksbergen.example"]
    )
    assert evidence.missing == ["contact"]


def test_dates_and_ip_addresses_are_not_phone_numbers() -> None:
    text = COMPLETE_EN + "\nSeen on 2026-02-03 10:12:33 from 192.168.10.20.\n"
    assert check_report(text, reporter_address=None).missing == ["contact"]


def test_no_target_means_reproduction_missing() -> None:
    text = (
        "Beste mensen,\n\nJullie website heeft een ernstig lek waarmee iedereen de gegevens van "
        "inwoners kan inzien. Graag snel oplossen.\n\nGroet, Jan"
    )
    evidence = check_report(text, reporter_address="jan@example.net")
    assert not evidence.target and evidence.description
    assert evidence.missing == ["reproduction"]


def test_a_bare_url_is_no_description() -> None:
    text = "Hi,\n\nhttps://loket.haaksbergen.example/admin\n\nRegards, Sam"
    evidence = check_report(text, reporter_address="sam@finder.example")
    assert evidence.target and not evidence.description
    assert evidence.missing == ["reproduction"]


def test_ip_address_or_host_name_counts_as_target() -> None:
    base = "The login form on {} accepts any password for the user admin since last week."
    for target in ("192.0.2.15", "2001:db8::15", "mail.haaksbergen.example", "[2001:db8::1]"):
        evidence = check_report(base.format(target), reporter_address="a@b.example")
        assert evidence.target, target
    for not_a_target in ("index.php", "version 2.4.1", "10:12:33", "e.g. this"):
        evidence = check_report(base.format(not_a_target), reporter_address="a@b.example")
        assert not evidence.target, not_a_target


def test_missing_text_uses_the_documented_labels() -> None:
    line = missing_text(["contact", "reproduction"])
    assert line.startswith("Missing: ")
    assert MISSING_LABELS["contact"] in line and MISSING_LABELS["reproduction"] in line


def test_evidence_merges_over_follow_ups() -> None:
    first = check_report("https://x.haaksbergen.example/a", reporter_address="a@b.example")
    second = check_report(
        "It happens when you open the page while logged out and press the print button.",
        reporter_address="a@b.example",
    )
    assert first.missing == ["reproduction"] and second.missing == ["reproduction"]
    assert first.merged(second).missing == []


def test_targets_are_normalised_and_deduplicated() -> None:
    text = (
        "See https://WWW.Haaksbergen.example/Loket/?id=1 and http://www.haaksbergen.example/loket/"
        "\nalso haaksbergen.example, 192.0.2.7 and 192.0.2.7 again; api.haaksbergen.example."
    )
    targets = extract_targets(text)
    assert targets.hosts == ("haaksbergen.example", "192.0.2.7", "api.haaksbergen.example")
    assert targets.urls == (
        "https://haaksbergen.example/Loket",
        "http://haaksbergen.example/loket",
    )


def test_defanged_indicators_are_read() -> None:
    targets = extract_targets(
        "Payload host: hxxps://evil[.]haaksbergen[.]example/x and 10[.]0[.]0[.]1"
    )
    assert targets.hosts == ("evil.haaksbergen.example", "10.0.0.1")


def test_references_mail_addresses_signature_and_quotes_are_not_targets() -> None:
    text = (
        "The portal at https://parkeren.haaksbergen.example leaks data, see "
        "https://owasp.org/Top10/A01 and https://cwe.mitre.org/data/definitions/200.html.\n"
        "Mail me at sam@finder.example.\n"
        "> earlier: https://quoted.haaksbergen.example\n"
        "-- \nSam Finder | www.finder.example\n"
    )
    assert extract_targets(text).hosts == ("parkeren.haaksbergen.example",)
    assert extract_targets(text, ignore_domains=["parkeren.haaksbergen.example"]).hosts == ()


def test_sentences_without_space_are_not_hosts() -> None:
    text = "De pagina werkt niet.De foutmelding toont het wachtwoord.Het is ernstig."
    assert extract_targets(text).hosts == ()


def test_no_reply_senders_are_no_contact() -> None:
    assert reachable_address("femke@example.net", "noreply@haaksbergen.example") == (
        "femke@example.net"
    )
    assert reachable_address(None, "noreply@haaksbergen.example") is None
    assert reachable_address("no-reply+form@x.example", "Sam@finder.example") == (
        "Sam@finder.example"
    )
    for address in ("mailer-daemon@x.example", "do-not-reply@x.example", "bounces@x.example"):
        assert is_no_reply(address), address
    for address in ("replyguy@x.example", "noreen@x.example", "report-1+f@reply.x.example"):
        assert not is_no_reply(address), address
    evidence = check_report(COMPLETE_EN, reporter_address="noreply@haaksbergen.example")
    assert evidence.missing == ["contact"]
