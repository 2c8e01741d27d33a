"""A scripted Matrix user with end-to-end encryption (matrix-nio): a team member or an outsider.

Tests, benchmarks and the demo use it to talk to the bot the way a person in Element would:
its own device, its own key store, threaded messages, and a record of everything it
decrypted (and of everything it could not decrypt, so tests can assert there was none).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    InviteMemberEvent,
    JoinedMembersError,
    JoinResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RedactionEvent,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessage,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
    WhoamiResponse,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_FILE = "session.json"
MEGOLM = "m.megolm.v1.aes-sha2"

# nio's default sync returns at most 10 timeline events per room; a burst from the bot
# between two syncs would then come back "limited" and the older events would never be
# seen. Presence is off on the test server anyway; skipping it keeps responses small.
_SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 500}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
}


@dataclass(frozen=True)
class ReceivedMessage:
    """One `m.room.message` as this person's client saw it (decrypted when it was encrypted)."""

    event_id: str
    sender: str
    body: str
    formatted_body: str | None
    content: dict[str, Any]
    thread_root: str | None
    timestamp: int  # origin_server_ts, milliseconds since the epoch
    room_id: str = ""
    encrypted: bool = True


@dataclass
class _Session:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    @classmethod
    def load(cls, path: Path) -> _Session | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            **{k: str(data[k]) for k in ("homeserver", "user_id", "device_id", "access_token")}
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)


@dataclass
class _Undecryptable:
    room_id: str
    event: MegolmEvent
    first_seen: float = field(default_factory=time.monotonic)


class Person:
    """An E2EE Matrix client with a background sync loop. Create with `await Person.create(...)`.

    Timing rule that Matrix itself imposes: a message is encrypted for the members the
    sender's client has synced at that moment. `create_encrypted_room` and `invite` wait
    until the invitees are in the sender's view; when someone else brought a member in,
    call `await sender.wait_for_member(room_id, newcomer)` before sending to them.
    """

    def __init__(
        self,
        client: AsyncClient,
        store_dir: Path,
        *,
        auto_join: bool,
        sync_timeout_ms: int,
    ) -> None:
        self.client = client
        self.store_dir = store_dir
        self.auto_join = auto_join
        self._sync_timeout_ms = sync_timeout_ms
        self._messages: list[ReceivedMessage] = []
        self._seen_event_ids: set[str] = set()
        self._undecryptable: list[_Undecryptable] = []
        # Redactions seen: room ID -> {redacted event ID: who redacted it}.
        self._redacted: dict[str, dict[str, str]] = {}
        self._cond = asyncio.Condition()
        # One key operation at a time: the sync loop and send() both query and claim keys,
        # and two concurrent claims for one device would open two Olm sessions.
        self._keys_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._sync_count = 0
        self._sync_error: str | None = None
        self._closed = False

    @property
    def user_id(self) -> str:
        user_id: str = self.client.user_id
        return user_id

    @property
    def device_id(self) -> str:
        device_id: str = self.client.device_id
        return device_id

    @classmethod
    async def create(
        cls,
        homeserver_url: str,
        user_id: str,
        password: str,
        store_dir: Path,
        *,
        auto_join: bool = False,
        device_name: str = "cvdbot-harness",
        sync_timeout_ms: int = 2000,
    ) -> Person:
        """Log in (or restore the device saved in `store_dir`), upload keys, start syncing.

        Returns after the first sync, so the person's rooms are known.
        """
        store_dir = Path(store_dir)
        store_dir.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        session_path = store_dir / SESSION_FILE
        session = _Session.load(session_path)
        if session is not None and session.user_id != user_id:
            raise RuntimeError(
                f"{store_dir} holds the device of {session.user_id}, not {user_id}; "
                "give every person their own store_dir"
            )

        if session is not None:
            client = AsyncClient(
                session.homeserver,
                session.user_id,
                device_id=session.device_id,
                store_path=str(store_dir),
                config=config,
            )
            # Restoring keeps the device and its Olm account: the other members already
            # trust (and share room keys with) exactly this device.
            client.restore_login(session.user_id, session.device_id, session.access_token)
            whoami = await client.whoami()
            if not isinstance(whoami, WhoamiResponse) or whoami.device_id != session.device_id:
                await client.close()
                raise RuntimeError(
                    f"saved session for {user_id} in {store_dir} is no longer valid "
                    f"on {session.homeserver}: {whoami}"
                )
        else:
            client = AsyncClient(homeserver_url, user_id, store_path=str(store_dir), config=config)
            response = await client.login(password, device_name=device_name)
            if not isinstance(response, LoginResponse):
                await client.close()
                raise RuntimeError(f"login of {user_id} failed: {response}")
            _Session(
                homeserver_url, response.user_id, response.device_id, response.access_token
            ).save(session_path)

        person = cls(client, store_dir, auto_join=auto_join, sync_timeout_ms=sync_timeout_ms)
        # Device keys must be on the server before anyone can encrypt for this device;
        # otherwise the first messages in a room are sent to nobody on our side.
        if client.should_upload_keys:
            await person._checked(client.keys_upload(), "keys_upload")
        client.add_event_callback(person._on_message, RoomMessage)
        client.add_event_callback(person._on_undecryptable, MegolmEvent)
        client.add_event_callback(person._on_invite, InviteMemberEvent)
        client.add_event_callback(person._on_redaction, RedactionEvent)
        await person._start_sync()
        return person

    # ----------------------------------------------------------------- rooms

    async def create_encrypted_room(self, invite: list[str], name: str = "cvdbot test room") -> str:
        """Create a private room with Megolm encryption from the first event on; return its ID."""
        return await self._create_room(invite, name, encrypted=True)

    async def create_plain_room(self, invite: list[str], name: str = "unencrypted room") -> str:
        """Create a private room WITHOUT encryption, for tests of what must never go there."""
        return await self._create_room(invite, name, encrypted=False)

    async def _create_room(self, invite: list[str], name: str, *, encrypted: bool) -> str:
        initial_state = (
            [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]
            if encrypted
            else []
        )
        response = await self.client.room_create(
            visibility=RoomVisibility.private,
            name=name,
            invite=invite,
            preset=RoomPreset.private_chat,
            initial_state=initial_state,
        )
        if not isinstance(response, RoomCreateResponse):
            raise RuntimeError(f"{self.user_id} could not create a room: {response}")
        room_id: str = response.room_id
        await self.wait_for_room(room_id)
        # Only members this client has synced get the room key of the next message: wait
        # until every invitee shows up, so create-then-send needs no sleeps.
        for user_id in invite:
            await self.wait_for_member(room_id, user_id, joined=False)
        return room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        response = await self.client.room_invite(room_id, user_id)
        if not isinstance(response, RoomInviteResponse):
            raise RuntimeError(
                f"{self.user_id} could not invite {user_id} to {room_id}: {response}"
            )
        # Invited members receive room keys too (history visibility "shared"), but only
        # once this client has synced the invite; afterwards send() includes them.
        await self.wait_for_member(room_id, user_id, joined=False)

    async def join(self, room_id: str, timeout: float = 30.0) -> None:
        """Join a room (after an invite) and wait until the sync loop knows it."""
        response = await self.client.join(room_id)
        if not isinstance(response, JoinResponse):
            raise RuntimeError(f"{self.user_id} could not join {room_id}: {response}")
        await self.wait_for_room(room_id, timeout)

    async def wait_for_room(self, room_id: str, timeout: float = 30.0) -> MatrixRoom:
        """Wait until `room_id` is a joined room in this client's synced state."""
        room: MatrixRoom = await self._wait_until(
            lambda: self.client.rooms.get(room_id), timeout, f"room {room_id} to sync"
        )
        return room

    async def wait_for_member(
        self, room_id: str, user_id: str, timeout: float = 30.0, *, joined: bool = True
    ) -> None:
        """Wait until this client's view of the room shows `user_id` joined (or invited)."""

        def present() -> bool:
            room = self.client.rooms.get(room_id)
            if room is None or user_id not in room.users:
                return False
            return not joined or user_id not in room.invited_users

        await self._wait_until(
            lambda: True if present() else None,
            timeout,
            f"{user_id} to be {'joined' if joined else 'a member'} in {room_id}",
        )

    # -------------------------------------------------------------- messages

    async def send(
        self,
        room_id: str,
        body: str,
        thread_root: str | None = None,
        *,
        txn_id: str | None = None,
    ) -> str:
        """Send a text message (in a thread when `thread_root` is given); return its event ID.

        A retry with the same `txn_id` (after a failure whose request may have arrived) is
        the same event to the homeserver, as a real client's resend is."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        if thread_root is not None:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread_root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": thread_root},
            }
        return await self.send_content(room_id, content, txn_id=txn_id)

    async def send_content(
        self,
        room_id: str,
        content: dict[str, Any],
        event_type: str = "m.room.message",
        *,
        txn_id: str | None = None,
    ) -> str:
        """Send any event content, encrypted when the room is; return the event ID."""
        await self.wait_for_room(room_id)
        async with self._keys_lock:
            room = self.client.rooms[room_id]
            if room.encrypted:
                await self._prepare_encryption(room)
            response = await self.client.room_send(
                room_id,
                event_type,
                content,
                # Room membership is the trust boundary in these tests; no device
                # verification ceremony between scripted users.
                ignore_unverified_devices=True,
                tx_id=txn_id,
            )
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"{self.user_id} could not send to {room_id}: {response}")
        event_id: str = response.event_id
        return event_id

    def messages(self, room_id: str, *, include_own: bool = False) -> list[ReceivedMessage]:
        """Every message seen in the room so far, oldest first (others' only by default)."""
        return [
            m
            for m in self._messages
            if m.room_id == room_id and (include_own or m.sender != self.user_id)
        ]

    async def wait_for_message(
        self,
        room_id: str,
        predicate: Callable[[ReceivedMessage], bool] = lambda _m: True,
        timeout: float = 30.0,
        *,
        include_plaintext: bool = False,
    ) -> ReceivedMessage:
        """The first message from someone else in `room_id` matching `predicate`.

        Messages that arrived before the call count too. Only decrypted (end-to-end
        encrypted) messages match unless `include_plaintext` is set.
        """

        def find() -> ReceivedMessage | None:
            for message in self.messages(room_id):
                if (include_plaintext or message.encrypted) and predicate(message):
                    return message
            return None

        try:
            found: ReceivedMessage = await self._wait_until(find, timeout, "a matching message")
        except TimeoutError as exc:
            seen = [(m.sender, m.body[:80]) for m in self.messages(room_id)]
            undecryptable = self.undecryptable(room_id)
            raise TimeoutError(
                f"{self.user_id}: no matching message in {room_id} within {timeout:.1f} s; "
                f"seen {seen}; undecryptable {len(undecryptable)}"
            ) from exc
        return found

    def redacted(self, room_id: str) -> dict[str, str]:
        """The events this client saw redacted in the room: {event ID: who redacted it}."""
        return dict(self._redacted.get(room_id, {}))

    async def wait_for_redactions(
        self, room_id: str, event_ids: set[str], timeout: float = 60.0
    ) -> dict[str, str]:
        """Wait until every event in `event_ids` was seen redacted; returns all redactions."""
        await self._wait_until(
            lambda: True if event_ids <= set(self._redacted.get(room_id, {})) else None,
            timeout,
            f"redaction of {len(event_ids)} events in {room_id}",
        )
        return self.redacted(room_id)

    def undecryptable(self, room_id: str | None = None) -> list[MegolmEvent]:
        """Encrypted events this device still cannot decrypt (none, in a healthy test)."""
        return [u.event for u in self._undecryptable if room_id is None or u.room_id == room_id]

    async def wait_for_sync(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until `count` more sync responses have been processed."""
        target = self._sync_count + count
        await self._wait_until(
            lambda: True if self._sync_count >= target else None, timeout, f"{count} sync(s)"
        )

    # -------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        """Stop syncing and close the HTTP session. Never logs out: the device and its keys
        stay valid so the same store_dir can be used again."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._sync_task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()

    async def __aenter__(self) -> Person:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- internals

    async def _start_sync(self) -> None:
        self._sync_task = asyncio.create_task(self._sync_loop(), name=f"sync {self.user_id}")
        try:
            await self.wait_for_sync(1, timeout=60)
        except TimeoutError as exc:
            await self.close()
            raise RuntimeError(
                f"first sync of {self.user_id} did not complete: {self._sync_error}"
            ) from exc

    async def _sync_loop(self) -> None:
        # Like nio's sync_forever, but sequential (so the key operations never race each
        # other) and it survives transient errors instead of dying with the first one.
        first = True
        while True:
            try:
                response = await self.client.sync(
                    timeout=0 if first else self._sync_timeout_ms,
                    sync_filter=_SYNC_FILTER,
                    full_state=True if first else None,
                )
                if not isinstance(response, SyncResponse):
                    self._sync_error = str(response)
                    log.warning("%s: sync failed: %s", self.user_id, response)
                    await asyncio.sleep(0.5)
                    continue
                first = False
                async with self._keys_lock:
                    await self._key_maintenance()
                # Room keys travel as to-device events; without new ones a retry cannot
                # succeed and would only repeat nio's warnings.
                if response.to_device_events:
                    await self._retry_undecryptable()
                self._sync_error = None
                self._sync_count += 1
                await self._notify()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._sync_error = repr(exc)
                log.exception("%s: sync loop error", self.user_id)
                await asyncio.sleep(0.5)

    async def _key_maintenance(self) -> None:
        client = self.client
        if client.should_upload_keys:
            await self._checked(client.keys_upload(), "keys_upload")
        if client.should_query_keys:
            await self._checked(client.keys_query(), "keys_query")
        if client.should_claim_keys:
            await self._checked(
                client.keys_claim(client.get_users_for_key_claiming()), "keys_claim"
            )
        await client.send_to_device_messages()

    async def _prepare_encryption(self, room: MatrixRoom) -> None:
        # nio's room_send only fetches members and device keys when the member list was
        # never loaded. A member who joined (or a device that appeared) since then is
        # known to the sync loop but not yet queried: query now, or the room key is not
        # shared with that device and it cannot read this message.
        if not room.members_synced:
            response = await self.client.joined_members(room.room_id)
            if isinstance(response, JoinedMembersError):
                raise RuntimeError(f"could not load members of {room.room_id}: {response}")
        if self.client.should_query_keys:
            await self._checked(self.client.keys_query(), "keys_query")

    async def _checked(self, call: Any, what: str) -> Any:
        try:
            response = await call
        except LocalProtocolError as exc:
            # "No key query required" and friends: the state changed under us; harmless.
            log.debug("%s: %s skipped: %s", self.user_id, what, exc)
            return None
        if type(response).__name__.endswith("Error"):
            log.warning("%s: %s failed: %s", self.user_id, what, response)
        return response

    async def _on_redaction(self, room: MatrixRoom, event: RedactionEvent) -> None:
        self._redacted.setdefault(room.room_id, {})[event.redacts] = event.sender
        await self._notify()

    async def _on_message(self, room: MatrixRoom, event: RoomMessage) -> None:
        self._record(room.room_id, event)
        await self._notify()

    async def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.event_id in self._seen_event_ids or any(
            u.event.event_id == event.event_id for u in self._undecryptable
        ):
            return
        log.warning(
            "%s (%s): cannot decrypt %s from %s (session %s) in %s",
            self.user_id,
            self.device_id,
            event.event_id,
            event.sender,
            event.session_id,
            room.room_id,
        )
        self._undecryptable.append(_Undecryptable(room.room_id, event))

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if not self.auto_join or event.state_key != self.user_id or event.membership != "invite":
            return
        task = asyncio.create_task(self._auto_join(room.room_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        if not isinstance(response, JoinResponse):
            log.warning("%s: auto-join of %s failed: %s", self.user_id, room_id, response)

    async def _retry_undecryptable(self) -> None:
        # A room key can arrive in a later sync than the message it unlocks (for example a
        # key shared after a late device-list update); try again after every sync.
        if not self._undecryptable:
            return
        still: list[_Undecryptable] = []
        for pending in self._undecryptable:
            pending.event.room_id = pending.room_id
            try:
                decrypted = self.client.decrypt_event(pending.event)
            except EncryptionError:
                still.append(pending)
                continue
            if isinstance(decrypted, RoomMessage):
                log.info("%s: decrypted %s late", self.user_id, pending.event.event_id)
                self._record(pending.room_id, decrypted)
        self._undecryptable = still

    def _record(self, room_id: str, event: RoomMessage) -> None:
        if event.event_id in self._seen_event_ids:
            return
        self._seen_event_ids.add(event.event_id)
        source: dict[str, Any] = event.source if isinstance(event.source, dict) else {}
        content: dict[str, Any] = dict(source.get("content") or {})
        relates = content.get("m.relates_to") or {}
        thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        body = content.get("body")
        formatted = content.get("formatted_body")
        self._messages.append(
            ReceivedMessage(
                event_id=event.event_id,
                sender=event.sender,
                body=body if isinstance(body, str) else "",
                formatted_body=formatted if isinstance(formatted, str) else None,
                content=content,
                thread_root=thread_root if isinstance(thread_root, str) else None,
                timestamp=int(event.server_timestamp),
                room_id=room_id,
                encrypted=bool(getattr(event, "decrypted", False)),
            )
        )

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _wait_until(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._cond:
            while True:
                found = probe()
                if found is not None:
                    return found
                if self._sync_task is not None and self._sync_task.done():
                    raise RuntimeError(f"{self.user_id}: sync loop ended while waiting for {what}")
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    problem = f" (last sync error: {self._sync_error})" if self._sync_error else ""
                    raise TimeoutError(f"{self.user_id}: timed out waiting for {what}{problem}")
                # Wake at least every second: some state (room lists) changes inside nio
                # without a notification from us.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), min(remaining, 1.0))
