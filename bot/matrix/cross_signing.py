"""Cross-signing for the bot's account: its own master, self-signing and user-signing keys.

matrix-nio has no cross-signing, so without this the bot's device is "not verified by its
owner": Element shows a red shield on every bot message, and a client with "exclude insecure
devices" on withholds room keys from the bot and refuses to decrypt what it sends. The
protocol (Matrix spec, "Cross-signing"; mautrix-python `crypto/cross_signing.py`) is small:

1. three Ed25519 key pairs: master, self-signing, user-signing;
2. the master key signs the other two; all three are uploaded with
   `POST /keys/device_signing/upload` (under user-interactive auth with the password when the
   account already has keys);
3. the self-signing key signs the bot's device key, uploaded with `POST /keys/signatures/upload`.

Every signature is Ed25519 over the canonical JSON of the object without its `signatures`
and `unsigned` members. The private keys stay on this machine: `cross-signing.keys` beside
the crypto store, mode 0600, AES-GCM encrypted with a key derived from the store's pickle key.

A start checks what the server publishes (`POST /keys/query`) and uploads nothing when the
published master key is ours and the device is signed by our self-signing key. Keys the bot
does not hold (someone set up cross-signing for the bot's account in Element) are reported
and left alone; `cvdbot cross-sign --reset` replaces them.
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

log = logging.getLogger(__name__)

KEYS_FILE = "cross-signing.keys"
_FILE_VERSION = 1
_KDF_INFO = b"cvdbot cross-signing keys v1"


class CrossSigningError(Exception):
    """The server refused an upload, or answered something we cannot use."""


# -- the signed-JSON primitives ----------------------------------------------------------------


def unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signable_bytes(obj: dict[str, Any]) -> bytes:
    """What a Matrix signature covers: canonical JSON without `signatures` and `unsigned`."""
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return bytes(encode_canonical_json(stripped))


def public_key_b64(private: Ed25519PrivateKey) -> str:
    return unpadded_b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_json(
    obj: dict[str, Any], user_id: str, private: Ed25519PrivateKey, key_id: str
) -> dict[str, Any]:
    """A copy of `obj` with our signature added under `signatures[user_id]["ed25519:key_id"]`."""
    signature = unpadded_b64(private.sign(signable_bytes(obj)))
    signed = {k: v for k, v in obj.items() if k != "unsigned"}
    signatures = {user: dict(sigs) for user, sigs in (obj.get("signatures") or {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{key_id}"] = signature
    signed["signatures"] = signatures
    return signed


def signature_valid(obj: dict[str, Any], user_id: str, public_b64: str) -> bool:
    """Whether `obj` carries a valid signature by the Ed25519 key `public_b64` of `user_id`."""
    signature = ((obj.get("signatures") or {}).get(user_id) or {}).get(f"ed25519:{public_b64}")
    if not isinstance(signature, str):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(_b64decode(public_b64))
        key.verify(_b64decode(signature), signable_bytes(obj))
    except (InvalidSignature, ValueError):
        return False
    return True


def key_of(signing_key: dict[str, Any]) -> str | None:
    """The one Ed25519 public key in a published cross-signing key object."""
    keys = [v for k, v in (signing_key.get("keys") or {}).items() if k.startswith("ed25519:")]
    return keys[0] if len(keys) == 1 and isinstance(keys[0], str) else None


def fingerprint(public_b64: str) -> str:
    """A public key in groups of four, as Element shows key fingerprints."""
    return " ".join(public_b64[i : i + 4] for i in range(0, len(public_b64), 4))


# -- the bot's key set and its private file ---------------------------------------------------


@dataclass(frozen=True)
class CrossSigningKeys:
    master: Ed25519PrivateKey
    self_signing: Ed25519PrivateKey
    user_signing: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(
            Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
        )

    @property
    def master_public(self) -> str:
        return public_key_b64(self.master)

    @property
    def self_signing_public(self) -> str:
        return public_key_b64(self.self_signing)

    def upload_body(self, user_id: str) -> dict[str, Any]:
        """The three public key objects, the other two signed by the master key."""

        def key_object(private: Ed25519PrivateKey, usage: str) -> dict[str, Any]:
            public = public_key_b64(private)
            return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}

        master = key_object(self.master, "master")
        return {
            "master_key": master,
            "self_signing_key": sign_json(
                key_object(self.self_signing, "self_signing"),
                user_id,
                self.master,
                self.master_public,
            ),
            "user_signing_key": sign_json(
                key_object(self.user_signing, "user_signing"),
                user_id,
                self.master,
                self.master_public,
            ),
        }

    def sign_device(self, user_id: str, device_keys: dict[str, Any]) -> dict[str, Any]:
        return sign_json(device_keys, user_id, self.self_signing, self.self_signing_public)

    def _seeds(self) -> dict[str, str]:
        def seed(private: Ed25519PrivateKey) -> str:
            raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            return unpadded_b64(raw)

        return {
            "master": seed(self.master),
            "self_signing": seed(self.self_signing),
            "user_signing": seed(self.user_signing),
        }

    @classmethod
    def _from_seeds(cls, seeds: dict[str, str]) -> CrossSigningKeys:
        def load(name: str) -> Ed25519PrivateKey:
            return Ed25519PrivateKey.from_private_bytes(_b64decode(seeds[name]))

        return cls(load("master"), load("self_signing"), load("user_signing"))


class KeyFile:
    """`cross-signing.keys`: the private keys, encrypted with a key derived from the pickle
    key. The master public key is readable without decrypting, for `cvdbot cross-sign`."""

    def __init__(self, store: Path, pickle_key: str, user_id: str) -> None:
        self.path = store / KEYS_FILE
        self._user_id = user_id
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(
                pickle_key.encode()
            )
        )

    def load(self) -> CrossSigningKeys | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if data.get("version") != _FILE_VERSION or data.get("user_id") != self._user_id:
            raise CrossSigningError(
                f"{self.path} is not a cross-signing key file of {self._user_id}"
            )
        plain = self._aead.decrypt(
            _b64decode(data["nonce"]), _b64decode(data["ciphertext"]), self._user_id.encode()
        )
        keys = CrossSigningKeys._from_seeds(json.loads(plain))
        if keys.master_public != data.get("master_key"):
            raise CrossSigningError(f"{self.path} is inconsistent (master key differs)")
        return keys

    def save(self, keys: CrossSigningKeys) -> None:
        nonce = secrets.token_bytes(12)
        ciphertext = self._aead.encrypt(
            nonce, json.dumps(keys._seeds()).encode(), self._user_id.encode()
        )
        text = json.dumps(
            {
                "version": _FILE_VERSION,
                "user_id": self._user_id,
                "master_key": keys.master_public,
                "nonce": unpadded_b64(nonce),
                "ciphertext": unpadded_b64(ciphertext),
            }
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


# -- the server side ----------------------------------------------------------------------------

# (method, path, body) -> (HTTP status, JSON answer); the caller adds the access token.
Request = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass(frozen=True)
class Published:
    """What the server publishes for the bot's account and device."""

    master: dict[str, Any] | None
    self_signing: dict[str, Any] | None
    device: dict[str, Any] | None

    @property
    def master_public(self) -> str | None:
        return key_of(self.master) if self.master else None


class Outcome(enum.Enum):
    VERIFIED = "verified"  # published keys are ours, the device is signed: nothing uploaded
    CREATED = "created"  # new keys made, uploaded, the device signed
    REUPLOADED = "reuploaded"  # our stored keys were missing on the server: uploaded again
    DEVICE_SIGNED = "device-signed"  # keys were ours, the device signature was missing
    FOREIGN = "foreign"  # the account has cross-signing keys this bot does not hold


@dataclass(frozen=True)
class Status:
    outcome: Outcome
    master_key: str | None  # the published master key (ours unless FOREIGN)

    def describe(self) -> str:
        key = fingerprint(self.master_key) if self.master_key else "none"
        if self.outcome is Outcome.FOREIGN:
            return (
                f"the account has cross-signing keys this bot does not hold (master key {key}); "
                "its device stays unsigned, so Element shows it as not verified by its owner. "
                "Run `cvdbot cross-sign --config PATH --reset` to replace them with the bot's own"
            )
        return f"cross-signing {self.outcome.value}; master key {key}"


class CrossSigning:
    """Brings the account's cross-signing to the state described above."""

    def __init__(
        self,
        request: Request,
        key_file: KeyFile,
        *,
        user_id: str,
        device_id: str,
        device_ed25519: str,
        password: str,
    ) -> None:
        self._request = request
        self._file = key_file
        self._user_id = user_id
        self._device_id = device_id
        self._device_ed25519 = device_ed25519
        self._password = password

    async def ensure(self, *, reset: bool = False) -> Status:
        published = await self.published()
        ours = self._file.load()
        if reset:
            keys = CrossSigningKeys.generate()
            await self._upload_keys(keys)
            self._file.save(keys)
            await self._sign_device(keys, await self.published())
            return Status(Outcome.CREATED, keys.master_public)
        if published.master is None:
            if ours is None:
                keys = CrossSigningKeys.generate()
                # Saved before the upload: a crash between the two leaves keys we hold and
                # can upload again, never published keys we lost.
                self._file.save(keys)
                outcome = Outcome.CREATED
            else:
                keys, outcome = ours, Outcome.REUPLOADED
            await self._upload_keys(keys)
            await self._sign_device(keys, await self.published())
            return Status(outcome, keys.master_public)
        if ours is None or published.master_public != ours.master_public:
            return Status(Outcome.FOREIGN, published.master_public)
        if self._device_signed(ours, published):
            return Status(Outcome.VERIFIED, ours.master_public)
        if key_of(published.self_signing or {}) != ours.self_signing_public:
            # Our master key, another self-signing key: upload our set again.
            await self._upload_keys(ours)
            published = await self.published()
        await self._sign_device(ours, published)
        return Status(Outcome.DEVICE_SIGNED, ours.master_public)

    async def published(self) -> Published:
        status, answer = await self._request(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {self._user_id: []}}
        )
        if status != 200:
            raise CrossSigningError(f"keys/query answered {status}: {answer.get('errcode')}")
        device = ((answer.get("device_keys") or {}).get(self._user_id) or {}).get(self._device_id)
        return Published(
            master=(answer.get("master_keys") or {}).get(self._user_id),
            self_signing=(answer.get("self_signing_keys") or {}).get(self._user_id),
            device=device,
        )

    def _device_signed(self, keys: CrossSigningKeys, published: Published) -> bool:
        ssk = published.self_signing
        return (
            ssk is not None
            and key_of(ssk) == keys.self_signing_public
            and signature_valid(ssk, self._user_id, keys.master_public)
            and published.device is not None
            and signature_valid(published.device, self._user_id, keys.self_signing_public)
        )

    async def _upload_keys(self, keys: CrossSigningKeys) -> None:
        path = "/_matrix/client/v3/keys/device_signing/upload"
        body = keys.upload_body(self._user_id)
        status, answer = await self._request("POST", path, body)
        if status == 401 and "session" in answer:
            # User-interactive auth: replacing keys needs the password (a first upload does
            # not on Synapse, MSC3967).
            auth = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self._user_id},
                "password": self._password,
                "session": answer["session"],
            }
            status, answer = await self._request("POST", path, {**body, "auth": auth})
        if status != 200:
            raise CrossSigningError(
                f"uploading cross-signing keys failed ({status}): {answer.get('errcode')} "
                f"{answer.get('error', '')}".strip()
            )
        log.info("uploaded cross-signing keys, master key %s", fingerprint(keys.master_public))

    async def _sign_device(self, keys: CrossSigningKeys, published: Published) -> None:
        device = published.device
        if device is None:
            raise CrossSigningError(f"the server publishes no keys for device {self._device_id}")
        # Sign only the device whose key this process holds: never a key the server made up.
        if (device.get("keys") or {}).get(f"ed25519:{self._device_id}") != self._device_ed25519:
            raise CrossSigningError(
                f"the published key of device {self._device_id} is not this store's key"
            )
        signed = keys.sign_device(self._user_id, device)
        status, answer = await self._request(
            "POST",
            "/_matrix/client/v3/keys/signatures/upload",
            {self._user_id: {self._device_id: signed}},
        )
        failures = answer.get("failures") or {}
        if status != 200 or failures:
            raise CrossSigningError(f"signing device {self._device_id} failed ({status})")
        log.info("signed device %s with the self-signing key", self._device_id)
