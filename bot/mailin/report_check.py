"""What the CVD policy asks of a report, checked on its text, and the hosts and URLs it names.

The policy needs "a way to contact the reporter" (an e-mail address or telephone number) and
"enough information to reproduce: usually the IP address or URL of the affected system and a
description". The check is a heuristic for the team's benefit, never a gate: it only says
what seems to be missing. Pure, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "COMPLETE_TEXT",
    "MIN_DESCRIPTION_WORDS",
    "MISSING_LABELS",
    "MISSING_PREFIX",
    "REFERENCE_DOMAINS",
    "Evidence",
    "Targets",
    "check_report",
    "extract_targets",
    "is_no_reply",
    "missing_text",
    "reachable_address",
]

#: The thread line for an incomplete report starts with this, followed by the labels below.
MISSING_PREFIX = "Missing:"
#: What each missing requirement is called in the thread (keys: the manifest's `missing`).
MISSING_LABELS: dict[str, str] = {
    "contact": "a way to contact the reporter",
    "reproduction": "how to reproduce (URL, IP address or host name, and a description)",
}
COMPLETE_TEXT = (
    "Report check: complete (a way to contact the reporter, and a URL, IP address or host "
    "name with a description)."
)
#: Words of prose (not counting addresses, greetings and sign-offs) that make a description.
MIN_DESCRIPTION_WORDS = 6

#: Sites reports cite as references, not as the affected system: naming one does not make
#: two reports related. A host matches when it is one of these or a subdomain of one.
REFERENCE_DOMAINS = frozenset(
    {
        "owasp.org",
        "mitre.org",
        "cve.org",
        "nist.gov",
        "first.org",
        "portswigger.net",
        "github.com",
        "gitlab.com",
        "google.com",
        "microsoft.com",
        "mozilla.org",
        "wikipedia.org",
        "youtube.com",
        "securitytxt.org",
        "ncsc.nl",
        "divd.nl",
        "hackerone.com",
        "bugcrowd.com",
        "openbugbounty.org",
        "shodan.io",
        "matrix.to",
        "virustotal.com",
        "ssllabs.com",
        "example.com",
        "example.org",
        "example.net",
    }
)

# Top-level domains that make a dotted word a host name rather than a file name ("index.php")
# or an abbreviation: the common generic ones, the ccTLDs Dutch reports name most, and the
# special-use names of internal networks and documentation.
_TLDS = frozenset(
    """
    com net org info biz edu gov mil int io co ai app dev cloud online site tech xyz me tv eu
    nl be de fr uk lu at ch dk se no fi es pt it pl cz ie us ca au nz jp cn ru br in za frl
    amsterdam nu cc ly gg
    example test local localhost internal lan intra corp home arpa invalid onion
    """.split()
)

_URL_RE = re.compile(r"\b(?:https?|ftps?|wss?)://[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
# The look-behind makes a match start only where a run of address characters starts:
# without it, a long run without "@" (a 200,000-character subject of "A"s) is scanned again
# from every position in it, which is quadratic in the run's length.
_EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6_RE = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])"
)
_HOST_RE = re.compile(
    r"(?<![\w@.-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}))\.?(?![\w-])",
    re.IGNORECASE,
)
# International (+31 …, 0031 …) or Dutch national (0 and nine more digits) numbers.
_PHONE_RE = re.compile(
    r"(?<![\w.])(?:(?:\+|00)[1-9]\d{0,2}[\s.-]?(?:\(0\)[\s.-]?)?\d(?:[\s.-]?\d){6,12}"
    r"|0\d(?:[\s-]?\d){8})(?![\w.])"
)
_WORD_RE = re.compile(r"[^\W\d_]{2,}")
_TRAILING_PUNCT = ".,;:!?)'\"»”’>"
# Defanged indicators ("hxxps://", "example[.]com") as security people write them.
_DEFANG = [
    (re.compile(r"\bhxxp(s?)://", re.IGNORECASE), r"http\1://"),
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}"), "."),
    (re.compile(r"\[:\]"), ":"),
]
_SIGNATURE_RE = re.compile(r"^-- ?$", re.MULTILINE)
# Greetings, thanks and sign-offs in Dutch and English: saying hello is not a description.
_FILLER = frozenset(
    """
    hello hi hey dear sir madam regards kind best thanks thank you cheers sincerely greetings
    yours team to whom it may concern all
    hallo hoi beste geachte heer mevrouw groet groeten vriendelijke met bedankt dank alvast
    je jullie u goedemorgen goedemiddag goedenavond dag
    """.split()
)


# Senders nobody reads: a web form's or a platform's "no-reply", and mailer daemons. A mail
# from one (without a Reply-To) gives no way to contact the reporter.
_NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|niet[-_.]?beantwoorden|geen[-_.]?antwoord"
    r"|mailer[-_.]?daemon|postmaster|bounces?)(?:[-_.+][^@]*)?@",
    re.IGNORECASE,
)


def is_no_reply(address: str) -> bool:
    return _NO_REPLY.match(address) is not None


def reachable_address(*candidates: str | None) -> str | None:
    """The first address that reaches a person (Reply-To before From), or None."""
    for address in candidates:
        if address and not is_no_reply(address):
            return address
    return None


@dataclass(frozen=True)
class Targets:
    """Hosts (host names and IP addresses, normalised) and URLs a text names, in order."""

    hosts: tuple[str, ...]
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    """What the report (and the reporter's follow-ups) contain of the policy's needs."""

    contact: bool
    target: bool
    description: bool

    def merged(self, other: Evidence) -> Evidence:
        return Evidence(
            self.contact or other.contact,
            self.target or other.target,
            self.description or other.description,
        )

    @property
    def missing(self) -> list[str]:
        """Keys of MISSING_LABELS that are missing, in that order."""
        missing = []
        if not self.contact:
            missing.append("contact")
        if not (self.target and self.description):
            missing.append("reproduction")
        return missing


def missing_text(missing: list[str]) -> str:
    """``Missing: a way to contact the reporter; how to reproduce (…).``"""
    return f"{MISSING_PREFIX} " + "; ".join(MISSING_LABELS[key] for key in missing) + "."


def _refang(text: str) -> str:
    for pattern, replacement in _DEFANG:
        text = pattern.sub(replacement, text)
    return text


def _without_signature(text: str) -> str:
    match = _SIGNATURE_RE.search(text)
    return text[: match.start()] if match else text


def _without_quotes(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))


def _normalise_host(host: str) -> str | None:
    host = host.strip().strip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if "." not in host or len(host) > 253:
        return None
    return host.removeprefix("www.")


def _is_reference(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in REFERENCE_DOMAINS)


def _normalise_url(url: str) -> tuple[str, str] | None:
    """(normalised URL, normalised host) of a URL found in text, or None when unusable."""
    url = url.rstrip(_TRAILING_PUNCT)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return None
    if not hostname:
        return None
    host = _normalise_host(hostname)
    if host is None:
        return None
    path = parts.path.rstrip("/")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}{path}", host


def _hosts_in(text: str) -> list[str]:
    """Host names and IP addresses in text that holds no URLs or mail addresses any more."""
    found: list[tuple[int, str]] = []
    for match in _IPV4_RE.finditer(text):
        try:
            found.append((match.start(), str(ipaddress.IPv4Address(match.group(0)))))
        except ValueError:
            continue
    for match in _IPV6_RE.finditer(text):
        candidate = match.group(0)
        # Times ("10:12:33") and MAC addresses are not IPv6; the parser says which are.
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue
        try:
            found.append((match.start(), str(ipaddress.IPv6Address(candidate))))
        except ValueError:
            continue
    for match in _HOST_RE.finditer(text):
        tld = match.group(2)
        # "werkt niet.De pagina": a sentence without a space after its full stop, not a host.
        if tld.lower() not in _TLDS or not (tld.islower() or tld.isupper()):
            continue
        host = _normalise_host(match.group(1))
        if host is not None:
            found.append((match.start(), host))
    found.sort()
    return [host for _, host in found]


def extract_targets(
    text: str, *, ignore_domains: Iterable[str] = (), include_references: bool = False
) -> Targets:
    """The hosts and URLs a report names (signature and quoted lines left out).

    Hosts of reference sites (REFERENCE_DOMAINS, unless `include_references`) and
    `ignore_domains` (the sender's own mail domain, the bot's) are left out: they say
    nothing about the affected system.
    """
    ignored = {domain.lower().removeprefix("www.") for domain in ignore_domains}

    def wanted(host: str) -> bool:
        return host not in ignored and (include_references or not _is_reference(host))

    body = _refang(_without_quotes(_without_signature(text)))
    hosts: list[str] = []
    urls: list[str] = []
    for match in _URL_RE.finditer(body):
        normalised = _normalise_url(match.group(0))
        if normalised is None:
            continue
        url, host = normalised
        if not wanted(host):
            continue
        urls.append(url)
        hosts.append(host)
    rest = _EMAIL_RE.sub(" ", _URL_RE.sub(" ", body))
    hosts.extend(host for host in _hosts_in(rest) if wanted(host))
    return Targets(tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(urls)))


def _description_words(text: str) -> int:
    body = _refang(_without_quotes(_without_signature(text)))
    prose = _EMAIL_RE.sub(" ", _URL_RE.sub(" ", body))
    prose = _HOST_RE.sub(" ", _IPV6_RE.sub(" ", _IPV4_RE.sub(" ", prose)))
    return sum(1 for word in _WORD_RE.findall(prose) if word.lower() not in _FILLER)


def check_report(
    text: str,
    *,
    reporter_address: str | None,
    ignore_addresses: Iterable[str] = (),
) -> Evidence:
    """What `text` (with the reporter's address, if any) gives of the policy's needs.

    Contact: the reporter's address, or an e-mail address or telephone number in the text
    that is not one of `ignore_addresses` (the bot's own). Reproduction: a URL, IP address or
    host name, and at least MIN_DESCRIPTION_WORDS words of description.
    """
    ignored = {address.lower() for address in ignore_addresses}
    contact = reporter_address is not None and not is_no_reply(reporter_address)
    if not contact:
        addresses = {
            address.lower() for address in _EMAIL_RE.findall(text) if not is_no_reply(address)
        }
        contact = bool(addresses - ignored) or _PHONE_RE.search(text) is not None
    targets = extract_targets(text, include_references=True)
    target = bool(targets.hosts or targets.urls)
    description = _description_words(text) >= MIN_DESCRIPTION_WORDS
    return Evidence(contact, target, description)
