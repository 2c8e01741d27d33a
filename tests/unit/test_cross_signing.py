"""Cross-signing's pure parts: signed JSON as other Matrix implementations check it, the
uploaded key objects, and the private key file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from bot.matrix.cross_signing import (
    KEYS_FILE,
    CrossSigningError,
    CrossSigningKeys,
    KeyFile,
    fingerprint,
    key_of,
    signable_bytes,
    signature_valid,
)

USER = "@cvdbot:example.org"


def _verify_with_signedjson(obj: dict[str, object], public_b64: str) -> None:
    """Synapse's own checker (signedjson), not ours: raises when the signature is bad."""
    key = decode_verify_key_bytes(f"ed25519:{public_b64}", decode_base64(public_b64))
    verify_signed_json(obj, USER, key)


def test_upload_body_is_signed_as_synapse_checks_it() -> None:
    keys = CrossSigningKeys.generate()
    body = keys.upload_body(USER)
    master = body["master_key"]
    assert master["usage"] == ["master"] and master["user_id"] == USER
    assert key_of(master) == keys.master_public
    for name, usage in (("self_signing_key", "self_signing"), ("user_signing_key", "user_signing")):
        signed = body[name]
        assert signed["usage"] == [usage]
        assert signature_valid(signed, USER, keys.master_public)
        _verify_with_signedjson(signed, keys.master_public)
    assert key_of(body["self_signing_key"]) == keys.self_signing_public


def test_device_signature_covers_canonical_json_without_unsigned() -> None:
    keys = CrossSigningKeys.generate()
    device = {
        "user_id": USER,
        "device_id": "DEV",
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {"ed25519:DEV": "abc", "curve25519:DEV": "def"},
        "signatures": {USER: {"ed25519:DEV": "device-self-signature"}},
        "unsigned": {"device_display_name": "cvdbot"},
    }
    signed = keys.sign_device(USER, device)
    assert "unsigned" not in signed
    # The device's own signature stays; ours is added next to it.
    assert signed["signatures"][USER]["ed25519:DEV"] == "device-self-signature"
    assert signature_valid(signed, USER, keys.self_signing_public)
    _verify_with_signedjson(signed, keys.self_signing_public)
    # Key order and `unsigned` do not matter; any change of content does.
    reordered = json.loads(json.dumps(dict(reversed(list(signed.items())))))
    reordered["unsigned"] = {"device_display_name": "renamed"}
    assert signature_valid(reordered, USER, keys.self_signing_public)
    tampered = {**signed, "algorithms": ["m.megolm.v1.aes-sha2"]}
    assert not signature_valid(tampered, USER, keys.self_signing_public)
    with pytest.raises(SignatureVerifyException):
        _verify_with_signedjson(tampered, keys.self_signing_public)
    assert not signature_valid(signed, USER, keys.master_public)  # signed by the other key


def test_signable_bytes_are_canonical() -> None:
    assert signable_bytes({"b": 1, "a": "é", "signatures": {}, "unsigned": {}}) == (
        '{"a":"é","b":1}'.encode()
    )


def test_key_file_round_trip_is_private_and_needs_the_pickle_key(tmp_path: Path) -> None:
    keys = CrossSigningKeys.generate()
    KeyFile(tmp_path, "pickle-key", USER).save(keys)
    path = tmp_path / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    stored = json.loads(text)
    assert stored["master_key"] == keys.master_public
    for seed in CrossSigningKeys._seeds(keys).values():
        assert seed not in text  # no private key in clear
    loaded = KeyFile(tmp_path, "pickle-key", USER).load()
    assert loaded is not None
    assert loaded.master_public == keys.master_public
    assert loaded.self_signing_public == keys.self_signing_public
    with pytest.raises(InvalidTag):
        KeyFile(tmp_path, "another-pickle-key", USER).load()
    with pytest.raises(CrossSigningError):
        KeyFile(tmp_path, "pickle-key", "@someone:example.org").load()
    assert KeyFile(tmp_path / "empty", "pickle-key", USER).load() is None


def test_fingerprint_groups_of_four() -> None:
    assert fingerprint("abcdefghij") == "abcd efgh ij"
