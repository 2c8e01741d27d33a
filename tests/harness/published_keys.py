"""What another user's client sees of the bot's cross-signing: the keys Synapse publishes for
the bot account, every signature checked with signedjson (Synapse's own checker, over
canonical JSON). Shared by the cross-signing tests and the lost-token test, which both must
show that the bot's device is signed by its self-signing key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from tests.harness.bot import CvdDeployment
from tests.harness.person import Person
from tests.harness.synapse import SynapseServer


def http(
    synapse: SynapseServer, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        synapse.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@dataclass(frozen=True)
class BotKeys:
    master: str
    self_signing: str
    device_signed_by: str


def check_published(d: CvdDeployment, observer: Person) -> BotKeys:
    """What another user's client sees: every signature verified over canonical JSON."""
    device_id = json.loads((d.store_path / "session.json").read_text())["device_id"]
    status, answer = http(
        d.synapse,
        "POST",
        "/_matrix/client/v3/keys/query",
        observer.client.access_token,
        {"device_keys": {d.bot_user: []}},
    )
    assert status == 200, answer
    master = answer["master_keys"][d.bot_user]
    assert master["usage"] == ["master"] and master["user_id"] == d.bot_user
    [master_key] = master["keys"].values()
    ssk = answer["self_signing_keys"][d.bot_user]
    assert ssk["usage"] == ["self_signing"]
    [ssk_key] = ssk["keys"].values()
    verify_signed_json(ssk, d.bot_user, _verify_key(master_key))  # raises when bad
    device = answer["device_keys"][d.bot_user][device_id]
    verify_signed_json(device, d.bot_user, _verify_key(ssk_key))
    # The device's own signature still verifies too: the server stored the same object.
    verify_signed_json(device, d.bot_user, _device_verify_key(device, device_id))
    return BotKeys(master_key, ssk_key, ssk_key)


def _verify_key(public_b64: str) -> Any:
    return decode_verify_key_bytes(f"ed25519:{public_b64}", decode_base64(public_b64))


def _device_verify_key(device: dict[str, Any], device_id: str) -> Any:
    public = device["keys"][f"ed25519:{device_id}"]
    return decode_verify_key_bytes(f"ed25519:{device_id}", decode_base64(public))
