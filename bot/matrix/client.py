"""The Matrix side: a matrix-nio E2EE client with a stable device, the sync loop, and sends.

The crypto identity must survive restarts: the first start logs in with the password and
saves the access token and device ID next to the key store; every later start restores them
instead of logging in again (a new login would be a new device that nobody's client trusts
and that cannot read earlier room keys). The client is never logged out on shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    Event,
    InviteMemberEvent,
    JoinError,
    KeysClaimResponse,
    LoginResponse,
    MegolmEvent,
    RoomHistoryVisibilityEvent,
    RoomJoinRulesEvent,
    RoomMemberEvent,
    RoomRedactResponse,
    RoomSendResponse,
    ShareGroupSessionResponse,
    SyncResponse,
    UploadResponse,
)

from bot.config import MatrixConfig
from bot.matrix.cross_signing import CrossSigning, KeyFile, Outcome, Request, key_of
from bot.matrix.failures import Failure, classify_response, describe, is_transport_error
from bot.matrix.verification import OwnIdentity
from bot.ops.health import Liveness
from bot.policy.room_trust import RoomView, is_trusted
from storage import sync_state
from storage.db import Database, StorageUnavailable

log = logging.getLogger(__name__)

SYNC_TOKEN_KEY = "matrix.next_batch"  # noqa: S105 - a storage key name, not a secret
SYNC_TIMEOUT_MS = 30_000
# A long-poll sync that has not returned this long after its timeout is abandoned: the
# connection went silent (a NAT or proxy dropped it without a word), and a new one is made.
SYNC_MARGIN_SECONDS = 10.0
# The first sync asks for the full state and may take a while on a big account.
FIRST_SYNC_TIMEOUT_SECONDS = 180.0
# Any other single request (login, key upload) at start.
REQUEST_TIMEOUT_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 60.0
# nio's default sync returns at most 10 timeline events per room: a burst of commands would
# lose its oldest. Ask for many more, and no presence (the bot has no use for it).
SYNC_FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 500}, "state": {"lazy_load_members": False}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}

EventHandler = Callable[[str, Event], Awaitable[None]]
CaseRoomHandler = Callable[[RoomView], Awaitable[None]]


class MatrixFatalError(Exception):
    """A condition the bot must not run under (for example an unencrypted case room)."""


class MatrixSendError(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def pickle_key(store: Path) -> str:
    """The key the crypto store's pickles (and the cross-signing key file) are encrypted
    with; it lives beside the store so a restart can read it, and is private so other local
    users cannot."""
    path = store / "pickle.key"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


def load_session(config: MatrixConfig) -> Session | None:
    """The device saved by the first start, or None before it; refuses another account's."""
    store = Path(config.store_path)
    session_file = store / "session.json"
    if not session_file.exists():
        return None
    data = json.loads(session_file.read_text(encoding="utf-8"))
    session = Session(data["user_id"], data["device_id"], data["access_token"])
    if session.user_id != config.user_id:
        raise MatrixFatalError(
            f"the store at {store} belongs to {session.user_id}, not "
            f"{config.user_id}; point matrix.store_path at this account's store"
        )
    return session


def cross_signing_for(client: AsyncClient, config: MatrixConfig) -> CrossSigning:
    """The cross-signing steps for `client`'s device, talking through its HTTP session."""
    store = Path(config.store_path)
    return CrossSigning(
        raw_request(client),
        KeyFile(store, pickle_key(store), config.user_id),
        user_id=client.user_id,
        device_id=client.device_id,
        device_ed25519=client.olm.account.identity_keys["ed25519"],
        password=config.password.get_secret_value(),
    )


def raw_request(client: AsyncClient) -> Request:
    """A client-server API call through `client`'s HTTP session: what nio has no call for."""

    async def request(method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await client.send(
            method,
            path,
            json.dumps(body),
            headers={
                "Authorization": f"Bearer {client.access_token}",
                "Content-Type": "application/json",
            },
        )
        async with response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = {}
        return response.status, answer if isinstance(answer, dict) else {}

    return request


def invite_accepted(
    config: MatrixConfig, room_id: str, inviter: str | None, *, direct: bool
) -> bool:
    """Invites the bot follows: a team member's or manager's to the case room or the digest
    room, or to a direct chat (`is_direct`), which is where Element's "Verify" on the bot's
    profile sends its request. Commands run only in the case room (CommandDispatcher.handle)
    and nothing of a case is posted anywhere else, so in a direct chat the bot does nothing
    but answer verification requests."""
    if inviter not in config.team_and_managers:
        return False
    return direct or room_id in {config.case_room, config.digest_room}


class MatrixAdapter:
    def __init__(self, config: MatrixConfig, db: Database, on_event: EventHandler) -> None:
        self._config = config
        self._db = db
        self._on_event = on_event
        self._store = Path(config.store_path)
        self.client: AsyncClient | None = None
        self.liveness: Liveness | None = None  # heartbeats for /healthz (bot/ops/health.py)
        # The long-poll: an idle homeserver answers after this long, so a healthy sync loop
        # completes a round at least this often (App keeps it under the health stall limit).
        self.sync_timeout_ms = SYNC_TIMEOUT_MS
        self.case_room_ready = asyncio.Event()
        # One key operation at a time: the sync loop and a send can both claim keys, and two
        # concurrent claims for one device would open two Olm sessions for it.
        self._keys_lock = asyncio.Lock()
        self._joined_at: dict[str, datetime] = {}
        # The first sync is done: the outbox may send (what needs the case room waits for
        # case_room_ready, which is set only while the room is inside the trust boundary).
        self.synced = asyncio.Event()
        # Told what the case room looks like after every sync (bot/matrix/case_room_guard.py).
        self.on_case_room: CaseRoomHandler | None = None
        self._case_room_left: RoomMemberEvent | None = None
        self._case_room_changed_by: str | None = None
        self._saved_token: str | None = None
        # The account's master key when the bot holds it (cross-signing worked): its
        # verification MAC covers it, so a completed verification verifies the bot's user.
        self.master_key: str | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def _session_file(self) -> Path:
        return self._store / "session.json"

    async def start(self) -> None:
        """Log in or restore the device, upload keys, and run the first sync."""
        self._store.mkdir(parents=True, exist_ok=True)
        os.chmod(self._store, 0o700)
        client_config = AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=False,  # our own database holds the token, see _save_token
            pickle_key=pickle_key(self._store),
            max_limit_exceeded=None,
            # nio would retry a refused or timed-out request forever and silently; the bot
            # retries itself, with back-off and a log line (start, sync loop, outbox).
            max_timeouts=0,
        )
        session = load_session(self._config)
        client = AsyncClient(
            self._config.homeserver,
            self._config.user_id,
            device_id=session.device_id if session else None,
            store_path=str(self._store),
            config=client_config,
        )
        self.client = client
        if session:
            client.restore_login(session.user_id, session.device_id, session.access_token)
            log.info("restored Matrix device %s", session.device_id)
        else:
            response = await self._retrying(
                "Matrix login",
                lambda: client.login(
                    self._config.password.get_secret_value(), device_name=self._config.device_name
                ),
                relogin=False,
            )
            assert isinstance(response, LoginResponse)
            self._save_session(response)
            log.info("logged in to Matrix as new device %s", response.device_id)
        if client.should_upload_keys:
            await self._retrying("Matrix key upload", client.keys_upload)
        await self._cross_sign()
        await self._first_sync()

    def _save_session(self, response: LoginResponse) -> None:
        _write_private(
            self._session_file,
            json.dumps(
                {
                    "user_id": response.user_id,
                    "device_id": response.device_id,
                    "access_token": response.access_token,
                }
            ),
        )

    async def _retrying(
        self,
        what: str,
        call: Callable[[], Awaitable[Any]],
        *,
        limit: float = REQUEST_TIMEOUT_SECONDS,
        relogin: bool = True,
    ) -> Any:
        """`call()` until it succeeds: transient failures (the homeserver down, restarting
        behind a proxy, slow) are logged and retried with back-off; a lost access token
        logs in again (same device); a refusal no retry can change raises MatrixFatalError.
        """
        backoff = 1.0
        while True:
            try:
                response = await asyncio.wait_for(call(), limit)
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                outcome: object = exc
                failure: Failure | None = Failure.TRANSIENT
            else:
                outcome = response
                failure = classify_response(response)
            if failure is None:
                return response
            if failure is Failure.LOST_TOKEN and relogin:
                await self._relogin(outcome)
                continue
            if failure is not Failure.TRANSIENT:
                message = getattr(outcome, "message", "") or ""
                raise MatrixFatalError(f"{what} refused ({describe(outcome)}): {message}")
            log.warning(
                "%s failed (%s); the homeserver may be down or restarting: retrying in %.0f s",
                what,
                describe(outcome),
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _relogin(self, outcome: object) -> None:
        """The homeserver no longer accepts the access token (`M_UNKNOWN_TOKEN`, also a soft
        logout): log in again with the password *and the same device ID*, so the device keeps
        its keys and the room keys shared with it. Device keys are uploaded again (a
        homeserver that deleted the device has lost them; an identical upload changes
        nothing) and the device is cross-signed again if its signature went with it."""
        client = self.client
        assert client is not None
        device_id = client.device_id
        password = self._config.password.get_secret_value()
        if not password:
            raise MatrixFatalError(
                f"the homeserver no longer accepts the access token of device {device_id} "
                f"({describe(outcome)}) and matrix.password is empty, so the bot cannot log "
                "in again: set matrix.password (or CVDBOT_MATRIX__PASSWORD) and start it again; "
                "it will log in as the same device"
            )
        log.warning(
            "the homeserver no longer accepts the access token (%s): logging in again as "
            "the same device %s",
            describe(outcome),
            device_id,
        )
        response = await self._retrying(
            "Matrix login",
            lambda: client.login(password, device_name=self._config.device_name),
            relogin=False,
        )
        assert isinstance(response, LoginResponse)
        if response.device_id != device_id:
            raise MatrixFatalError(
                f"logging in again gave device {response.device_id}, not {device_id}"
            )
        self._save_session(response)
        if client.olm is not None:
            client.olm.account.shared = False  # upload the device keys again
        async with self._keys_lock:
            await self._retrying("Matrix key upload", client.keys_upload, relogin=False)
        await self._cross_sign()
        log.info("logged in again to Matrix as the same device %s", device_id)

    async def _cross_sign(self) -> None:
        """Publish the account's cross-signing keys and sign this device, or check that an
        earlier start did (then nothing is uploaded). A failure is logged, not fatal: the bot
        works as before, only Element shows its device as not verified by its owner."""
        assert self.client is not None
        try:
            status = await cross_signing_for(self.client, self._config).ensure()
        except Exception as exc:  # server, network or key-file problems: never fatal
            log.error(
                "cross-signing failed (%s: %s); the bot runs with a device not signed by its owner",
                type(exc).__name__,
                exc,
            )
            return
        if status.outcome is Outcome.FOREIGN:
            log.error("%s", status.describe())
        else:
            self.master_key = status.master_key
            log.info("%s", status.describe())

    async def _first_sync(self) -> None:
        assert self.client is not None
        async with self._db.transaction() as conn:
            token = await sync_state.get_value(conn, SYNC_TOKEN_KEY)
        # full_state: nio keeps room state only in memory, so every start needs it again.
        client = self.client
        response = await self._retrying(
            "first Matrix sync",
            lambda: client.sync(timeout=0, sync_filter=SYNC_FILTER, since=token, full_state=True),
            limit=FIRST_SYNC_TIMEOUT_SECONDS,
        )
        # Without a token this is the bot's very first start: what happened before it joined
        # is history, not commands for it. With a token, what arrived while it was down counts.
        self._saved_token = token
        await self._retrying("Matrix key upkeep", self._ready_to_encrypt)
        await self._process(response, run_timeline=token is not None)
        self.synced.set()

    async def _ready_to_encrypt(self) -> object:
        """After the first sync, before anything is posted: the case room's member list
        loaded and the members' device lists queried, which the first post would otherwise
        do itself. Then only the room key is left to share when the first post goes. Returns
        a failed response for `_retrying` to judge, else None."""
        client = self.client
        assert client is not None
        room = client.rooms.get(self._config.case_room)
        if room is not None and room.encrypted and not room.members_synced:
            response = await client.joined_members(room.room_id)
            if classify_response(response) is not None:
                return response
        await self._housekeeping()
        return None

    # -- sync -------------------------------------------------------------------------------

    async def sync_forever(self, stop: asyncio.Event) -> None:
        """Long-poll sync until `stop`. Failures are retried with back-off and logged; a
        sync that does not return within its timeout plus a margin is abandoned (a silent
        connection); a lost access token logs in again; only a fatal refusal raises."""
        client = self.client
        assert client is not None
        backoff = 1.0
        while not stop.is_set():
            limit = self.sync_timeout_ms / 1000 + SYNC_MARGIN_SECONDS
            try:
                response = await asyncio.wait_for(
                    client.sync(timeout=self.sync_timeout_ms, sync_filter=SYNC_FILTER), limit
                )
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                outcome: object = exc
                failure: Failure | None = Failure.TRANSIENT
                if isinstance(exc, TimeoutError):
                    outcome = f"no answer within {limit:.0f} s; the connection is abandoned"
            else:
                outcome = response
                failure = classify_response(response)
            if failure is Failure.LOST_TOKEN:
                await self._relogin(outcome)
                continue
            if failure is not None:
                text = outcome if isinstance(outcome, str) else describe(outcome)
                log.warning("Matrix sync failed (%s); retrying in %.0f s", text, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = 1.0
            try:
                await self._process(response, run_timeline=True)
            except StorageUnavailable:
                await self._rewind_after_storage_fault()
                continue
            try:
                await self._housekeeping()
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                log.warning("Matrix key upkeep failed (%s); again after the next sync",
                            describe(exc))  # fmt: skip
            if self.liveness is not None:
                self.liveness.beat("sync")

    async def _rewind_after_storage_fault(self) -> None:
        """The database refused a write while a batch was handled: the events of that
        batch are not (all) recorded, so the next sync starts again from the last saved
        token and handles the batch again (handled events are skipped)."""
        assert self.client is not None
        log.error(
            "Matrix events not handled: the database refused a write; the batch is read "
            "again in 5 s"
        )
        self.client.next_batch = self._saved_token
        await asyncio.sleep(5)

    async def _housekeeping(self) -> None:
        """What nio's sync_forever does between syncs: to-device messages and key upkeep."""
        client = self.client
        assert client is not None
        async with self._keys_lock:
            await client.send_to_device_messages()
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())

    async def _process(self, response: SyncResponse, *, run_timeline: bool) -> None:
        self._forget_left_rooms(response)
        for room_id, invite in response.rooms.invite.items():
            await self._handle_invite(room_id, invite.invite_state)
        for room_id, joined in response.rooms.join.items():
            self._note_join(room_id, [*joined.state, *joined.timeline.events])
        # Before the commands of the batch: the outbox may send as soon as the rooms are
        # known (a command may wait for a case root the outbox has yet to send again).
        await self._check_case_room()
        self.synced.set()
        if run_timeline:
            for room_id, joined in response.rooms.join.items():
                if joined.timeline.limited and self._config.case_room == room_id:
                    log.warning(
                        "the sync of the case room skipped events (a gap); "
                        "commands in the gap are not run"
                    )
                for event in joined.timeline.events:
                    if event.sender == self._config.user_id:
                        continue
                    await self._on_event(room_id, event)
        # The token is saved only after every event of the batch was handled: a crash
        # before this point replays the batch, and handled_events keeps that harmless.
        async with self._db.transaction() as conn:
            await sync_state.set_value(conn, SYNC_TOKEN_KEY, response.next_batch)
        self._saved_token = response.next_batch

    def _forget_left_rooms(self, response: SyncResponse) -> None:
        """nio keeps a room the bot was kicked or banned from as if it were still joined:
        drop it (and its outbound room key, so a rejoin starts a new one), and remember how
        the bot left the case room. Also note who changed the case room's join rule or
        history visibility, for the managers' alert."""
        assert self.client is not None
        case_room = self._config.case_room
        for room_id, left in response.rooms.leave.items():
            for event in [*left.state, *left.timeline.events]:
                if isinstance(event, RoomMemberEvent) and event.state_key == self._config.user_id:
                    if room_id == case_room:
                        self._case_room_left = event
            if room_id in self.client.rooms:
                log.warning("no longer a member of %s", room_id)
                self.client.rooms.pop(room_id, None)
                self.client.invalidate_outbound_session(room_id)
        joined = response.rooms.join.get(case_room)
        if joined is not None:
            for event in [*joined.state, *joined.timeline.events]:
                if isinstance(event, RoomJoinRulesEvent | RoomHistoryVisibilityEvent):
                    self._case_room_changed_by = event.sender
                elif isinstance(event, RoomMemberEvent) and event.state_key == (
                    self._config.user_id
                ):
                    if event.membership == "join":
                        self._case_room_left = None

    def case_room_view(self) -> RoomView:
        """The case room as the last sync left it (for the trust rule, bot/policy/)."""
        assert self.client is not None
        room = self.client.rooms.get(self._config.case_room)
        if room is None:
            left = self._case_room_left
            return RoomView(
                joined=False,
                changed_by=left.sender if left else None,
                left_as=left.membership if left else None,
                left_reason=(left.content.get("reason") if left else None) or None,
            )
        return RoomView(
            joined=True,
            encrypted=room.encrypted,
            join_rule=room.join_rule,
            history_visibility=room.history_visibility,
            changed_by=self._case_room_changed_by,
        )

    def _note_join(self, room_id: str, events: list[Any]) -> None:
        # When the bot joined: its own membership event, in the state of every first sync
        # (full_state) and in the timeline of the sync after a join.
        for event in events:
            if (
                isinstance(event, RoomMemberEvent)
                and event.state_key == self._config.user_id
                and event.membership == "join"
                and (event.prev_membership != "join" or room_id not in self._joined_at)
            ):
                self._joined_at[room_id] = datetime.fromtimestamp(
                    event.server_timestamp / 1000, UTC
                )

    def joined_at(self, room_id: str) -> datetime | None:
        """When the bot joined `room_id` (None when its join event was not seen)."""
        return self._joined_at.get(room_id)

    async def _handle_invite(self, room_id: str, invite_state: list[Any]) -> None:
        assert self.client is not None
        inviter, direct = None, False
        for event in invite_state:
            if (
                isinstance(event, InviteMemberEvent)
                and event.state_key == self._config.user_id
                and event.membership == "invite"
            ):
                inviter = event.sender
                direct = (event.content or {}).get("is_direct") is True
        if not invite_accepted(self._config, room_id, inviter, direct=direct):
            log.info("ignoring invite to %s from %s", room_id, inviter)
            return
        response = await self.client.join(room_id)
        if isinstance(response, JoinError):
            log.warning("could not join %s: %s", room_id, response.message)
        else:
            log.info("joined %s on the invite of %s", room_id, inviter)

    # -- verification (bot/matrix/verification.py) ------------------------------------------

    def own_identity(self) -> OwnIdentity:
        client = self.client
        assert client is not None and client.olm is not None
        return OwnIdentity(
            client.user_id,
            client.device_id,
            client.olm.account.identity_keys["ed25519"],
            self.master_key,
        )

    def is_team(self, user_id: str) -> bool:
        return user_id in self._config.team_and_managers

    async def device_ed25519(self, user_id: str, device_id: str) -> str | None:
        """A device's Ed25519 key from nio's device store, queried first when unknown (a
        device created moments ago, as a new Element login is)."""
        client = self.client
        assert client is not None and client.olm is not None
        if device_id not in client.device_store[user_id]:
            async with self._keys_lock:
                client.olm.users_for_key_query.add(user_id)
                await client.keys_query()
        device = client.device_store[user_id].get(device_id)
        return device.ed25519 if device is not None and not device.deleted else None

    async def published_master_key(self, user_id: str) -> str | None:
        """A user's published cross-signing master key (nio does not keep these)."""
        assert self.client is not None
        status, answer = await raw_request(self.client)(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: []}}
        )
        master = (answer.get("master_keys") or {}).get(user_id) if status == 200 else None
        return key_of(master) if isinstance(master, dict) else None

    async def _check_case_room(self) -> None:
        assert self.client is not None
        room = self.client.rooms.get(self._config.case_room)
        if room is not None and not room.encrypted:
            raise MatrixFatalError(
                f"case_room {self._config.case_room} is not end-to-end encrypted; cvdbot never "
                "posts report contents into such a room. Enable encryption in the room or "
                "configure an encrypted room."
            )
        # Not joined (not invited yet, or kicked): posts wait in the outbox until it is.
        view = self.case_room_view()
        if is_trusted(view) and not self.case_room_ready.is_set():
            log.info("case room %s is joined and encrypted: ready", self._config.case_room)
            self.case_room_ready.set()
        elif not is_trusted(view) and self.case_room_ready.is_set():
            log.warning("case room %s is outside the trust boundary", self._config.case_room)
            self.case_room_ready.clear()
        if self.on_case_room is not None:
            await self.on_case_room(view)

    def room_is_encrypted(self, room_id: str) -> bool:
        assert self.client is not None
        room = self.client.rooms.get(room_id)
        return room is not None and room.encrypted

    def is_joined(self, room_id: str) -> bool:
        assert self.client is not None
        return room_id in self.client.rooms

    async def upload_encrypted(self, data: bytes, mimetype: str, filename: str) -> dict[str, Any]:
        """Upload a file encrypted for an E2EE room; returns the event's `file` object (the
        media server holds only ciphertext; the key travels inside the encrypted event)."""
        client = self.client
        assert client is not None
        try:
            response, keys = await client.upload(
                lambda _rate_limited, _timeouts: data,
                content_type=mimetype,
                filename=filename,
                encrypt=True,
                filesize=len(data),
            )
        except Exception as exc:  # nio raises for transport problems during the upload
            raise MatrixSendError(f"upload failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(response, UploadResponse) or not keys:
            raise MatrixSendError(f"upload failed: {response}")
        return {**keys, "url": response.content_uri}

    # -- send -------------------------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        content: dict[str, Any],
        txn_id: str,
        event_type: str = "m.room.message",
    ) -> str:
        """Send one message (or another room event: verification steps); the same `txn_id`
        from this device is deduplicated by Synapse.

        The key work and the encryption run one at a time (under the keys lock); the request
        itself does not, so the outbox's sends for different cases overlap (the round trip to
        the homeserver is almost all of a post's time).
        """
        client = self.client
        assert client is not None
        if room_id not in client.rooms:
            raise MatrixSendError(f"not joined to {room_id} (yet)")
        try:
            async with self._keys_lock:
                sealed_type, body = await self._sealed_for(room_id, content, event_type)
            method, path, data = Api.room_send(
                client.access_token, room_id, sealed_type, body, txn_id
            )
            # What nio's room_send does after encrypting; called directly so that the
            # encryption above stays under the lock and the request does not.
            response = await client._send(RoomSendResponse, method, path, data, (room_id,))
        except MatrixSendError:
            raise
        except Exception as exc:  # nio raises for local state problems (e.g. no session)
            raise MatrixSendError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(response, RoomSendResponse):
            raise MatrixSendError(f"room_send failed: {response}")
        return str(response.event_id)

    async def _sealed_for(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> tuple[str, dict[str, Any]]:
        """The event type and content to send: encrypted for an encrypted room, after the
        steps nio's room_send takes first (members synced, device keys queried, the room key
        shared). Room membership is the trust boundary: keys go to every member's devices,
        verified or not (see README, "Trust")."""
        client = self.client
        assert client is not None
        if client.should_query_keys:
            await client.keys_query()
        room = client.rooms[room_id]
        if client.olm is None or not room.encrypted:
            return event_type, content
        if not room.members_synced:
            await client.joined_members(room_id)
            if client.should_query_keys:
                await client.keys_query()
        if client.olm.should_share_group_session(room_id):
            await self._share_room_key(room_id)
        sealed_type, sealed = client.encrypt(room_id, event_type, content)
        return str(sealed_type), sealed

    async def _share_room_key(self, room_id: str) -> None:
        """Send the room's outbound key to every member device, and count it as shared only
        when the homeserver accepted every one of those to-device messages.

        nio's own `share_group_session` ignores a failed to-device request and marks the key
        shared anyway; when the homeserver went away half-way through, every post encrypted
        with that key was then unreadable for the devices that missed it (the chaos run of
        2026-12-02). Here a failure raises, the key stays unshared and is never used to
        encrypt, and the next try sends the same key to the devices that did not confirm it
        (nio skips those that did). nio's version also leaves the room marked "sharing" for
        good when its one-time key claim raises, which would stall every later send.

        A device with no Olm session even after the claim (its owner's client published no
        one-time keys) is skipped with nio's warning, as nio does: waiting for it would stop
        all posting."""
        client = self.client
        assert client is not None and client.olm is not None
        missing = client.get_missing_sessions(room_id)
        if missing:
            claimed = await client.keys_claim(missing)
            if not isinstance(claimed, KeysClaimResponse):
                raise MatrixSendError(f"room key not shared: one-time key claim failed ({claimed})")
        requests = []
        for sharing_with, to_device in client.olm.share_group_session_parallel(
            room_id, list(client.rooms[room_id].users), ignore_unverified_devices=True
        ):
            method, path, data = Api.to_device(
                client.access_token, "m.room.encrypted", to_device, str(uuid.uuid4())
            )
            # _send hands a success to nio, which records the devices as having the key.
            requests.append(
                client._send(ShareGroupSessionResponse, method, path, data, (room_id, sharing_with))
            )
        results = await asyncio.gather(*requests, return_exceptions=True)
        failed = [r for r in results if not isinstance(r, ShareGroupSessionResponse)]
        if failed:
            raise MatrixSendError(
                f"room key not shared with every device ({describe(failed[0])}); "
                "the post waits and the key is sent again"
            )
        client.olm.outbound_group_sessions[room_id].shared = True

    async def redact(self, room_id: str, event_id: str, reason: str, txn_id: str) -> str:
        """Redact one event (the bot's own); the same `txn_id` is deduplicated by Synapse,
        and redacting an event twice changes nothing."""
        client = self.client
        assert client is not None
        if room_id not in client.rooms:
            raise MatrixSendError(f"not joined to {room_id} (yet)")
        try:
            response = await client.room_redact(room_id, event_id, reason=reason, tx_id=txn_id)
        except Exception as exc:  # nio raises for transport problems
            raise MatrixSendError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(response, RoomRedactResponse):
            raise MatrixSendError(f"room_redact failed: {response}")
        return str(response.event_id)

    async def request_key(self, event: MegolmEvent) -> None:
        assert self.client is not None
        try:
            async with self._keys_lock:
                await self.client.request_room_key(event)
        except Exception as exc:  # a session's key already requested raises: asked once
            log.info("room key request for %s not sent: %s", event.event_id, exc)

    def try_decrypt(self, room_id: str, event: MegolmEvent) -> Event | None:
        """The decrypted event when its room key has arrived since, else None."""
        assert self.client is not None
        event.room_id = room_id
        try:
            decrypted: Event = self.client.decrypt_event(event)
        except EncryptionError:
            return None
        return None if isinstance(decrypted, MegolmEvent) else decrypted

    def device_name(self, user_id: str, device_id: str) -> str | None:
        assert self.client is not None
        try:
            name = self.client.device_store[user_id][device_id].display_name
        except KeyError:
            return None
        return name if isinstance(name, str) and name else None

    async def close(self) -> None:
        if self.client is not None:
            # close(), never logout(): logging out would delete the device and its keys.
            await self.client.close()
