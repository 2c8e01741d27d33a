"""Tests for the pure parts of bot/pgp: status lines, key listings, wire bytes, quoted-printable.

No gpg binary here: the status lines are the ones gpg 2.2 writes, copied from real runs.
"""

from __future__ import annotations

import quopri
from email import policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.pgp.gpg_status import decrypt_error, signature_from_status, statuses
from bot.pgp.key_listing import (
    from_gpg_text,
    key_usable_for_encryption,
    summarise_key,
    to_gpg_text,
    uid_email,
)
from bot.pgp.mime_out import (
    encrypted_message,
    micalg,
    qp_encode,
    signed_message,
    signing_input,
)
from bot.pgp.mime_wire import crlf, first_part_bytes, parse, to_wire
from bot.pgp.verdicts import SignatureInfo, format_fingerprint

FPR = "0123456789ABCDEF0123456789ABCDEF01234567"
SUBKEY = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"


class _Result:
    def __init__(self, stderr: str) -> None:
        self.stderr = stderr


def status(*lines: str) -> list[tuple[str, str]]:
    return statuses(_Result("\n".join(f"[GNUPG:] {line}" for line in lines)))


# ------------------------------------------------------------------ gpg status lines


def test_statuses_keeps_only_status_lines() -> None:
    result = _Result("gpg: some chatter\n[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG ABCD Rita <r@x>\n")
    assert statuses(result) == [("NEWSIG", ""), ("GOODSIG", "ABCD Rita <r@x>")]


def test_good_signature_names_the_primary_key_not_the_subkey() -> None:
    validsig = f"{SUBKEY} 2026-01-01 1767225600 0 4 0 22 8 00 {FPR}"
    info = signature_from_status(
        status("NEWSIG", "GOODSIG 01234567 Rita <r@x>", f"VALIDSIG {validsig}")
    )
    assert info == SignatureInfo("good", FPR, "01234567", "Rita <r@x>")


def test_a_bad_signature_wins_over_a_good_one() -> None:
    info = signature_from_status(
        status("NEWSIG", "GOODSIG AAAA Alice", "NEWSIG", "BADSIG BBBB Mallory")
    )
    assert info is not None and info.status == "bad" and info.key_id == "BBBB"


def test_unknown_key_and_unsupported_algorithm() -> None:
    missing = signature_from_status(status(f"ERRSIG CCCC 22 8 00 1767225600 9 {FPR}"))
    assert missing == SignatureInfo("unknown_key", FPR, "CCCC", None)
    odd = signature_from_status(status("ERRSIG CCCC 99 8 00 1767225600 4 -"))
    assert odd == SignatureInfo("error", None, "CCCC", None, "unsupported algorithm")


def test_user_id_escapes_are_undone_as_utf8() -> None:
    info = signature_from_status(status("GOODSIG AAAA Ren%C3%A9e <r@x>"))
    assert info is not None and info.signer == "Renée <r@x>"


def test_no_signature_lines_is_no_verdict() -> None:
    assert signature_from_status(status("PLAINTEXT 62 0")) is None


def test_decrypt_errors_say_why() -> None:
    not_ours = status("ENC_TO 1111222233334444 18 0", "NO_SECKEY 1111222233334444")
    assert decrypt_error(not_ours) == "encrypted to a key we do not hold (key id 1111222233334444)"
    locked = status("ENC_TO AAAA 18 0", "ERROR pkdecrypt_failed 67108875")
    assert "could not be unlocked" in decrypt_error(locked)
    password = status("NEED_PASSPHRASE_SYM 9 3 2")
    assert decrypt_error(password) == "encrypted with a password instead of to our key"
    tampered = status("ENC_TO AAAA 18 0", "BEGIN_DECRYPTION", "BADMDC")
    assert decrypt_error(tampered).startswith("integrity check failed")


def test_format_fingerprint_groups_by_four() -> None:
    assert format_fingerprint("0x" + FPR.lower()) == (
        "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567"
    )


# ------------------------------------------------------------------ wire bytes


def test_first_part_bytes_is_exactly_the_first_part() -> None:
    raw = crlf(b"preamble\n--XY\nContent-Type: text/plain\n\nhello\n--XY\nsig\n--XY--\n")
    assert first_part_bytes(raw, "XY") == b"Content-Type: text/plain\r\n\r\nhello"
    assert first_part_bytes(raw, "nope") is None
    assert first_part_bytes(b"--XY--\r\n", "XY") is None


def _mail() -> EmailMessage:
    msg = EmailMessage(policy=policy.default)
    msg["From"] = "security@gemeente.example"
    msg["To"] = "rita@reporter.example"
    msg["Subject"] = "[CVD-2026-0007] Ontvangst"
    msg.set_content("From the team: één regel   \n.\n")
    return msg


def test_signed_message_transmits_the_signed_bytes_unchanged() -> None:
    msg = _mail()
    signed = signing_input(msg)
    out = signed_message(msg, signed, "-----BEGIN PGP SIGNATURE-----\n", micalg("10"))
    assert out.get_param("micalg") == "pgp-sha512"
    assert first_part_bytes(to_wire(out), str(out.get_boundary())) == signed
    # The protected headers travel inside the signed part, 7-bit clean.
    assert b"Subject: [CVD-2026-0007] Ontvangst" in signed and signed.isascii()
    assert parse(signed).get_param("protected-headers") == "v1"


def test_micalg_falls_back_to_sha256() -> None:
    assert micalg("8") == "pgp-sha256" and micalg(None) == "pgp-sha256"


def test_encrypted_message_can_hide_the_subject() -> None:
    out = encrypted_message(_mail(), "-----BEGIN PGP MESSAGE-----\n", hide_subject=True)
    assert out["Subject"] == "..."
    assert out.get_content_type() == "multipart/encrypted"
    parts = out.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "application/pgp-encrypted",
        "application/octet-stream",
    ]


# ------------------------------------------------------------------ quoted-printable


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda s: s.encode("utf-8")))
def test_qp_encode_is_transport_safe_and_lossless(data: bytes) -> None:
    encoded = qp_encode(data)
    assert encoded.isascii()
    for line in encoded.split("\n"):
        assert len(line) <= 76
        assert not line.endswith((" ", "\t"))
        assert not line.startswith("From ")
        assert line != "."
    assert quopri.decodestring(encoded.encode("ascii")) == data.replace(b"\r\n", b"\n")


def test_qp_encode_escapes_from_after_a_soft_break() -> None:
    data = b"x" * 75 + b"From here"
    lines = qp_encode(data).split("\n")
    assert lines[1].startswith("=46rom")


# ------------------------------------------------------------------ key listings


def _listed(**fields: object) -> dict[str, object]:
    key: dict[str, object] = {"fingerprint": FPR, "uids": ["Rita <rita@x.example>"]}
    key.update(fields)
    return key


def test_summarise_key_names_curve_or_algorithm_and_expiry() -> None:
    ed = _listed(curve="ed25519", trust="u", expires="1801353600")
    assert summarise_key(ed) == (
        f"Rita <rita@x.example> ed25519 {format_fingerprint(FPR)} (expires 2027-01-31)"
    )
    rsa = _listed(algo="1", length="3072", curve="", trust="e", expires="1801353600")
    assert summarise_key(rsa).endswith(
        "rsa3072 " + format_fingerprint(FPR) + " (expired 2027-01-31)"
    )
    revoked = _listed(algo="22", trust="r", expires="")
    assert summarise_key(revoked).endswith("(revoked)")
    assert summarise_key(_listed(uids=[], algo="99")).startswith("(no user id) algo99 ")


def test_user_ids_round_trip_through_the_latin1_codec() -> None:
    name = "Renée Ünal <renee@x.example>"
    assert from_gpg_text(to_gpg_text(name)) == name
    assert uid_email(from_gpg_text(to_gpg_text(name))) == "renee@x.example"


def test_a_user_id_with_two_addresses_matches_neither() -> None:
    assert uid_email("A <a@x.example>, B <b@y.example>") is None
    assert uid_email("no address") is None


def test_only_valid_keys_that_can_encrypt_are_usable() -> None:
    assert key_usable_for_encryption({"trust": "u", "cap": "scESC"})
    assert not key_usable_for_encryption({"trust": "u", "cap": "scSC"})
    assert not key_usable_for_encryption({"trust": "u", "cap": "scESCD"})
    for validity in ("r", "e", "i", "d"):
        assert not key_usable_for_encryption({"trust": validity, "cap": "scESC"})
