"""The bot answers a team member's emoji (SAS) verification of its user, as Element starts it.

Element's "Verify" on a user sends an in-room verification request (Matrix spec, "Key
verification framework" and "Short Authentication String (SAS) verification"): an
`m.room.message` with msgtype `m.key.verification.request`, whose event ID is the
transaction ID; every later event refers to it with `m.relates_to` (`rel_type`
`m.reference`). The bot never starts; it answers:

    them: request  -> bot: ready
    them: start    -> bot: accept (with the commitment to its key)
    them: key      -> bot: key, logs the SAS, and sends its MAC at once
    them: mac      -> bot: done when their MACs check out, else cancel m.key_mismatch

The bot cannot look at a screen, so the out-of-band check is the operator's: the bot logs
the seven emojis and three numbers at WARNING and the operator reads them to the team
member, who compares them with Element's before pressing "They match". Sending the MAC before
that comparison gives nothing away: it only proves the bot's keys to a side that has already
committed to its own SAS key, and the team member's client accepts it only after the person
confirmed. The MAC covers the bot's device key and its cross-signing master key, so a
completed verification marks the bot's *user* as verified in Element.

Pure protocol logic here; the Matrix I/O comes in as small callbacks (see `Verifications`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import vodozemac
from canonicaljson import encode_canonical_json

from bot.matrix.cross_signing import unpadded_b64

log = logging.getLogger(__name__)

REQUEST = "m.key.verification.request"
READY = "m.key.verification.ready"
START = "m.key.verification.start"
ACCEPT = "m.key.verification.accept"
KEY = "m.key.verification.key"
MAC = "m.key.verification.mac"
DONE = "m.key.verification.done"
CANCEL = "m.key.verification.cancel"
EVENT_TYPES = frozenset({READY, START, ACCEPT, KEY, MAC, DONE, CANCEL})

SAS_METHOD = "m.sas.v1"
KEY_AGREEMENT = "curve25519-hkdf-sha256"
HASH = "sha256"
MAC_V2 = "hkdf-hmac-sha256.v2"
MAC_V1 = "hkdf-hmac-sha256"  # base64 quirk of libolm; still offered by older clients
SAS_KINDS = ("emoji", "decimal")

# A request older than this is not answered, and a transaction is dropped this long after
# its request (the spec's timeout for a verification).
TIMEOUT = timedelta(minutes=10)

# The spec's emoji table ("SAS method: emoji"), index -> (emoji, English name). Not nio's
# `Sas.emoji`: it names three of them differently (Wrench, Thumbs up, Airplane) from the spec
# and Element (Spanner, Thumbs Up, Aeroplane), and the operator reads these names aloud.
EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"),
    ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"),
    ("🐧", "Penguin"), ("🐢", "Turtle"), ("🐟", "Fish"), ("🐙", "Octopus"),
    ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"),
    ("🍌", "Banana"), ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"), ("🎩", "Hat"),
    ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"), ("👍", "Thumbs Up"),
    ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"), ("🎁", "Gift"),
    ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"), ("📎", "Paperclip"),
    ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"), ("🔨", "Hammer"), ("☎️", "Telephone"),
    ("🏁", "Flag"), ("🚂", "Train"), ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"),
    ("🏆", "Trophy"), ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip


def commitment(public_key: str, start_content: dict[str, Any]) -> str:
    """What the accepter commits to before keys are exchanged: unpadded base64 of
    sha256(its public key in unpadded base64 + the canonical JSON of the start content as
    received, `m.relates_to` included)."""
    digest = hashlib.sha256(public_key.encode() + bytes(encode_canonical_json(start_content)))
    return unpadded_b64(digest.digest())


def sas_info(
    starter: tuple[str, str, str], accepter: tuple[str, str, str], transaction_id: str
) -> str:
    """The HKDF info for curve25519-hkdf-sha256: each side as (user, device, public key)."""
    return "|".join(["MATRIX_KEY_VERIFICATION_SAS", *starter, *accepter, transaction_id])


def mac_info_base(sender: tuple[str, str], receiver: tuple[str, str], transaction_id: str) -> str:
    """The MAC info prefix of the side (user, device) that sends the MAC; the key ID (or
    "KEY_IDS") is appended."""
    return "MATRIX_KEY_VERIFICATION_MAC" + "".join([*sender, *receiver, transaction_id])


def describe_sas(emoji_indices: list[int], decimals: tuple[int, int, int]) -> str:
    """One line an operator can read aloud: "🐶 Dog, 🐱 Cat, ... | 1234 5678 9012"."""
    emojis = ", ".join(f"{EMOJI[i][0]} {EMOJI[i][1]}" for i in emoji_indices)
    return f"{emojis} | {' '.join(str(d) for d in decimals)}"


def relates(transaction_id: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.reference", "event_id": transaction_id}}


@dataclass(frozen=True)
class OwnIdentity:
    """The bot as a verifier: its device key and, when it cross-signed, its master key."""

    user_id: str
    device_id: str
    device_key: str  # ed25519, unpadded base64
    master_key: str | None


@dataclass(frozen=True)
class VerificationEvent:
    """A verification event from the room timeline, whatever nio made of it."""

    type: str  # REQUEST for the request message, else the event type
    sender: str
    event_id: str
    content: dict[str, Any]
    sent_at: datetime

    @property
    def transaction_id(self) -> str | None:
        if self.type == REQUEST:
            return self.event_id
        relation = self.content.get("m.relates_to")
        if isinstance(relation, dict) and relation.get("rel_type") == "m.reference":
            event_id = relation.get("event_id")
            return event_id if isinstance(event_id, str) else None
        return None


def verification_event(source: dict[str, Any], sent_at: datetime) -> VerificationEvent | None:
    """The verification event in a room event's source (after decryption), or None."""
    content = source.get("content")
    if not isinstance(content, dict):
        return None
    event_type = source.get("type")
    if event_type == "m.room.message" and content.get("msgtype") == REQUEST:
        event_type = REQUEST
    elif event_type not in EVENT_TYPES:
        return None
    sender, event_id = source.get("sender"), source.get("event_id")
    if not isinstance(sender, str) or not isinstance(event_id, str):
        return None
    return VerificationEvent(str(event_type), sender, event_id, content, sent_at)


class Cancelled(Exception):
    """The transaction ends with an `m.key.verification.cancel` of this code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Transaction:
    room_id: str
    their_user: str
    their_device: str
    created: datetime
    state: str = "ready"  # ready -> accepted -> mac_sent -> done
    sas: vodozemac.Sas | None = None
    established: vodozemac.EstablishedSas | None = None
    mac_method: str = MAC_V2
    start_content: dict[str, Any] = field(default_factory=dict)


# room_id, event type, content
Send = Callable[[str, str, dict[str, Any]], Awaitable[None]]
DeviceKey = Callable[[str, str], Awaitable[str | None]]  # user, device -> ed25519 key
MasterKey = Callable[[str], Awaitable[str | None]]  # user -> published master key


class Verifications:
    """Every verification in progress, by transaction ID (the request's event ID)."""

    def __init__(
        self,
        own: Callable[[], OwnIdentity],
        allowed: Callable[[str], bool],
        *,
        send: Send,
        device_key: DeviceKey,
        master_key: MasterKey,
        now: Callable[[], datetime],
    ) -> None:
        self._own = own
        self._allowed = allowed
        self._send = send
        self._device_key = device_key
        self._master_key = master_key
        self._now = now
        self.transactions: dict[str, Transaction] = {}

    async def handle(self, room_id: str, event: VerificationEvent) -> None:
        """One verification event from `room_id`; never raises (the sync loop goes on)."""
        await self._expire()
        txn_id = event.transaction_id
        if txn_id is None or event.sender == self._own().user_id:
            return
        try:
            if event.type == REQUEST:
                await self._on_request(room_id, event)
                return
            txn = self.transactions.get(txn_id)
            if txn is None or txn.room_id != room_id or txn.their_user != event.sender:
                return  # not ours: another user's verification, or one we never answered
            await self._step(txn_id, txn, event)
        except Cancelled as cancel:
            await self._cancel(txn_id, cancel.code, cancel.reason)
        except Exception:
            log.exception("verification %s: handling %s failed", txn_id, event.type)
            self.transactions.pop(txn_id, None)

    async def _on_request(self, room_id: str, event: VerificationEvent) -> None:
        own = self._own()
        content = event.content
        who = f"{event.sender} (device {content.get('from_device')})"
        if content.get("to") != own.user_id:
            return
        if not self._allowed(event.sender):
            log.info("verification request from %s ignored: not a team member", who)
            return
        age = self._now() - event.sent_at
        if age > TIMEOUT or age < -TIMEOUT:
            log.info("verification request from %s ignored: sent %s ago", who, age)
            return
        device = content.get("from_device")
        if not isinstance(device, str) or event.event_id in self.transactions:
            return
        txn = Transaction(room_id, event.sender, device, created=event.sent_at)
        self.transactions[event.event_id] = txn
        methods = content.get("methods")
        if not isinstance(methods, list) or SAS_METHOD not in methods:
            raise Cancelled("m.unknown_method", "the bot verifies only with emoji (m.sas.v1)")
        await self._send(
            room_id,
            READY,
            {"from_device": own.device_id, "methods": [SAS_METHOD], **relates(event.event_id)},
        )
        log.info("verification request from %s in %s: ready", who, room_id)

    async def _step(self, txn_id: str, txn: Transaction, event: VerificationEvent) -> None:
        content = event.content
        if event.type == CANCEL:
            self.transactions.pop(txn_id, None)
            log.warning(
                "verification by %s (device %s) cancelled by them: %s %s",
                txn.their_user,
                txn.their_device,
                content.get("code"),
                content.get("reason", ""),
            )
        elif event.type == START and txn.state == "ready":
            await self._on_start(txn_id, txn, content)
        elif event.type == KEY and txn.state == "accepted":
            await self._on_key(txn_id, txn, content)
        elif event.type == MAC and txn.state == "mac_sent":
            await self._on_mac(txn_id, txn, content)
        elif event.type == DONE and txn.state == "done":
            self.transactions.pop(txn_id, None)
        elif event.type in (START, KEY, MAC, ACCEPT):
            raise Cancelled("m.unexpected_message", f"{event.type} was not expected now")

    async def _on_start(self, txn_id: str, txn: Transaction, content: dict[str, Any]) -> None:
        if content.get("method") != SAS_METHOD:
            raise Cancelled("m.unknown_method", "the bot verifies only with emoji (m.sas.v1)")
        if content.get("from_device") != txn.their_device:
            raise Cancelled("m.unexpected_message", "start from another device than the request")

        def offered(name: str) -> list[Any]:
            value = content.get(name)
            return value if isinstance(value, list) else []

        macs = offered("message_authentication_codes")
        mac_method = MAC_V2 if MAC_V2 in macs else MAC_V1 if MAC_V1 in macs else None
        kinds = [kind for kind in SAS_KINDS if kind in offered("short_authentication_string")]
        if (
            KEY_AGREEMENT not in offered("key_agreement_protocols")
            or HASH not in offered("hashes")
            or mac_method is None
            or "decimal" not in kinds
        ):
            raise Cancelled("m.unknown_method", "no common key agreement, hash, MAC or SAS")
        txn.sas = vodozemac.Sas()
        txn.mac_method = mac_method
        txn.start_content = content
        txn.state = "accepted"
        await self._send(
            txn.room_id,
            ACCEPT,
            {
                "method": SAS_METHOD,
                "key_agreement_protocol": KEY_AGREEMENT,
                "hash": HASH,
                "message_authentication_code": mac_method,
                "short_authentication_string": kinds,
                "commitment": commitment(txn.sas.public_key.to_base64(), content),
                **relates(txn_id),
            },
        )

    async def _on_key(self, txn_id: str, txn: Transaction, content: dict[str, Any]) -> None:
        own = self._own()
        their_key = content.get("key")
        assert txn.sas is not None
        if not isinstance(their_key, str):
            raise Cancelled("m.invalid_message", "key event without a key")
        our_key = txn.sas.public_key.to_base64()
        try:
            txn.established = txn.sas.diffie_hellman(
                vodozemac.Curve25519PublicKey.from_base64(their_key)
            )
        except (vodozemac.KeyException, vodozemac.SasException, ValueError) as exc:
            raise Cancelled("m.invalid_message", f"their key is not usable: {exc}") from exc
        await self._send(txn.room_id, KEY, {"key": our_key, **relates(txn_id)})
        info = sas_info(
            (txn.their_user, txn.their_device, their_key),
            (own.user_id, own.device_id, our_key),
            txn_id,
        )
        sas = txn.established.bytes(info)
        log.warning(
            "verification by %s (device %s): compare these with Element: %s",
            txn.their_user,
            txn.their_device,
            describe_sas(list(sas.emoji_indices), tuple(sas.decimals)),  # type: ignore[arg-type]
        )
        await self._send(txn.room_id, MAC, {**self.our_macs(txn_id, txn), **relates(txn_id)})
        txn.state = "mac_sent"

    def _mac(self, txn: Transaction, text: str, info: str) -> str:
        assert txn.established is not None
        if txn.mac_method == MAC_V2:
            return txn.established.calculate_mac(text, info)
        return txn.established.calculate_mac_invalid_base64(text, info)

    def our_macs(self, txn_id: str, txn: Transaction) -> dict[str, Any]:
        """`mac` and `keys` of our MAC event: our device key and our master key."""
        own = self._own()
        base = mac_info_base(
            (own.user_id, own.device_id), (txn.their_user, txn.their_device), txn_id
        )
        keys = {f"ed25519:{own.device_id}": own.device_key}
        if own.master_key:
            keys[f"ed25519:{own.master_key}"] = own.master_key
        macs = {key_id: self._mac(txn, key, base + key_id) for key_id, key in keys.items()}
        return {"mac": macs, "keys": self._mac(txn, ",".join(sorted(keys)), base + "KEY_IDS")}

    async def _on_mac(self, txn_id: str, txn: Transaction, content: dict[str, Any]) -> None:
        own = self._own()
        macs, keys_mac = content.get("mac"), content.get("keys")
        if not isinstance(macs, dict) or not isinstance(keys_mac, str):
            raise Cancelled("m.invalid_message", "MAC event without mac or keys")
        base = mac_info_base(
            (txn.their_user, txn.their_device), (own.user_id, own.device_id), txn_id
        )

        def matches(text: str, info: str, tag: Any) -> bool:
            return isinstance(tag, str) and hmac.compare_digest(self._mac(txn, text, info), tag)

        if not matches(",".join(sorted(macs)), base + "KEY_IDS", keys_mac):
            raise Cancelled("m.key_mismatch", "the MAC of the key list does not match")
        known = {}
        device_key = await self._device_key(txn.their_user, txn.their_device)
        if device_key:
            known[f"ed25519:{txn.their_device}"] = device_key
        master = await self._master_key(txn.their_user)
        if master:
            known[f"ed25519:{master}"] = master
        checked = []
        for key_id, tag in macs.items():
            if key_id not in known:
                log.info("verification %s: MAC for unknown key %s ignored", txn_id, key_id)
                continue
            if not matches(known[key_id], base + key_id, tag):
                raise Cancelled("m.key_mismatch", f"the MAC of {key_id} does not match")
            checked.append(key_id)
        if f"ed25519:{txn.their_device}" not in checked:
            raise Cancelled("m.key_mismatch", "no valid MAC for their device key")
        txn.state = "done"
        await self._send(txn.room_id, DONE, relates(txn_id))
        log.warning(
            "verified by %s (device %s): their keys %s check out",
            txn.their_user,
            txn.their_device,
            ", ".join(sorted(checked)),
        )

    async def _cancel(self, txn_id: str, code: str, reason: str) -> None:
        txn = self.transactions.pop(txn_id, None)
        if txn is None:
            return
        log.warning(
            "verification by %s (device %s) cancelled: %s (%s)",
            txn.their_user,
            txn.their_device,
            code,
            reason,
        )
        try:
            await self._send(
                txn.room_id, CANCEL, {"code": code, "reason": reason, **relates(txn_id)}
            )
        except Exception as exc:  # the transaction is gone either way
            log.warning("verification %s: cancel not sent: %s", txn_id, exc)

    async def _expire(self) -> None:
        """Transactions older than TIMEOUT end with a cancel `m.timeout`."""
        now = self._now()
        for txn_id, txn in list(self.transactions.items()):
            if now - txn.created > TIMEOUT:
                if txn.state == "done":
                    self.transactions.pop(txn_id, None)
                else:
                    await self._cancel(txn_id, "m.timeout", "not finished within 10 minutes")


def new_txn_id() -> str:
    return f"verify-{uuid.uuid4()}"
