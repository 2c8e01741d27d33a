// What a team member using Element sees of the bot: matrix-js-sdk (Element's SDK) with its
// Rust crypto, logged in as a room member on the homeserver.
//
//   node element-view.mjs --homeserver URL --user @erin:localhost --password PW \
//        --room '!room:localhost' --bot @cvdbot:localhost --bot-device DEVICEID \
//        [--cross-sign-self] [--isolation all|signed]
//
// It logs in (a new device), starts the Rust crypto (in memory), joins the room when invited,
// syncs, and prints one JSON line {"ready": ...} on stdout. Then it reads commands from stdin,
// one per line, and answers each with one JSON line:
//
//   report EVENT_ID...  for each event: decrypted or why not, sender, whether it is a thread
//                       reply, Element's shield for it (getEncryptionInfoForEvent); plus the bot
//                       device's getDeviceVerificationStatus and the bot's
//                       getUserVerificationStatus.
//   status              only the bot's device and user verification status.
//   pin                 CryptoApi.pinCurrentUserIdentity(bot)
//   send TEXT           sends TEXT to the room (encrypted); answers with its event ID.
//   sas-start [dm]      an in-room verification request to the bot
//                       (CryptoApi.requestVerificationDM) in the case room, or with `dm` in a
//                       new direct chat with the bot, made as Element's "Verify" on the bot's
//                       profile makes it (encrypted, is_direct, the bot invited, the request
//                       sent at once); waits for the bot's ready, starts m.sas.v1 and answers
//                       with the SAS the verifier shows (emoji with names, decimals).
//   sas-confirm         "They match": confirms the SAS, waits until the verification is done
//                       (or cancelled) and answers with the outcome and the bot's status.
//   sas-mismatch        "They don't match": cancels the verification instead.
//
// On end of input it logs the device out and exits. Diagnostics go to stderr.
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import {
    AllDevicesIsolationMode,
    EventShieldColour,
    EventShieldReason,
    OnlySignedDevicesIsolationMode,
    VerificationPhase,
    VerificationRequestEvent,
    VerifierEvent,
} from "matrix-js-sdk/lib/crypto-api/index.js";

const { values: args } = parseArgs({
    options: {
        homeserver: { type: "string" },
        user: { type: "string" },
        password: { type: "string" },
        room: { type: "string" },
        bot: { type: "string" },
        "bot-device": { type: "string" },
        "cross-sign-self": { type: "boolean", default: false },
        isolation: { type: "string", default: "all" },
        "decrypt-timeout": { type: "string", default: "20" },
    },
});
for (const name of ["homeserver", "user", "password", "room", "bot", "bot-device"]) {
    if (!args[name]) {
        process.stderr.write(`missing --${name}\n`);
        process.exit(2);
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const shieldColourName = (c) => EventShieldColour[c] ?? String(c);
const shieldReasonName = (r) => (r === null || r === undefined ? null : (EventShieldReason[r] ?? String(r)));

// stdout carries only this script's JSON lines: the SDK's log goes to stderr, warnings and up.
for (const level of ["log", "info", "debug", "trace"]) console[level] = console.error;
logger.setLevel("warn");

const loginClient = sdk.createClient({ baseUrl: args.homeserver });
const login = await loginClient.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: args.user },
    password: args.password,
    initial_device_display_name: "Element check (matrix-js-sdk)",
});
const client = sdk.createClient({
    baseUrl: args.homeserver,
    userId: login.user_id,
    deviceId: login.device_id,
    accessToken: login.access_token,
});
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
crypto.setDeviceIsolationMode(
    args.isolation === "signed" ? new OnlySignedDevicesIsolationMode() : new AllDevicesIsolationMode(false),
);

await new Promise((resolve, reject) => {
    client.once(sdk.ClientEvent.Sync, (state) => (state === "PREPARED" ? resolve() : reject(new Error(state))));
    client.startClient({ initialSyncLimit: 20 });
});
if (args["cross-sign-self"]) {
    await crypto.bootstrapCrossSigning({
        setupNewCrossSigning: true,
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: login.user_id },
                password: args.password,
            });
        },
    });
}
const room = client.getRoom(args.room);
if (room?.getMyMembership() !== "join") {
    await client.joinRoom(args.room);
}
// The bot's device list: the crypto must know the bot's keys before anything else.
await crypto.getUserDeviceInfo([args.bot], true);
out({
    ready: true,
    user: login.user_id,
    device: login.device_id,
    cross_signing_ready: await crypto.isCrossSigningReady(),
    isolation: args.isolation,
});

async function verificationStatus() {
    const device = await crypto.getDeviceVerificationStatus(args.bot, args["bot-device"]);
    const user = await crypto.getUserVerificationStatus(args.bot);
    return {
        bot_device: device && {
            signedByOwner: device.signedByOwner,
            crossSigningVerified: device.crossSigningVerified,
            localVerified: device.localVerified,
            isVerified: device.isVerified(),
        },
        bot_user: {
            isVerified: user.isVerified(),
            isCrossSigningVerified: user.isCrossSigningVerified(),
            wasCrossSigningVerified: user.wasCrossSigningVerified(),
            needsUserApproval: user.needsUserApproval,
        },
    };
}

// One event, fetched from the server and decrypted, retried until its room key arrives.
async function inspect(eventId) {
    const deadline = Date.now() + Number(args["decrypt-timeout"]) * 1000;
    let event;
    for (;;) {
        const raw = await client.fetchRoomEvent(args.room, eventId);
        event = new sdk.MatrixEvent(raw);
        await client.decryptEventIfNeeded(event);
        // Only a key that has not arrived yet is worth waiting for; any other failure (such
        // as UNSIGNED_SENDER_DEVICE) is this client's verdict.
        const waiting = event.decryptionFailureReason === "MEGOLM_UNKNOWN_INBOUND_SESSION_ID";
        if (!waiting || Date.now() > deadline) break;
        await sleep(250);
    }
    const content = event.getContent();
    const relation = content["m.relates_to"] ?? {};
    const info = event.isEncrypted() && !event.isDecryptionFailure()
        ? await crypto.getEncryptionInfoForEvent(event)
        : null;
    return {
        event_id: eventId,
        sender: event.getSender(),
        encrypted: event.isEncrypted(),
        decrypted: event.isEncrypted() && !event.isDecryptionFailure(),
        decryption_failure: event.decryptionFailureReason ?? null,
        type: event.getType(),
        msgtype: content.msgtype ?? null,
        thread_root: relation.rel_type === "m.thread" ? relation.event_id : null,
        shieldColour: info ? shieldColourName(info.shieldColour) : null,
        shieldReason: info ? shieldReasonName(info.shieldReason) : null,
    };
}

// The SAS verification in progress: its request, verifier, SAS callbacks and verify() promise.
let sas = null;

function untilPhase(request, phases, timeoutMs) {
    return new Promise((resolve, reject) => {
        const check = () => {
            if (phases.includes(request.phase)) {
                request.off(VerificationRequestEvent.Change, check);
                clearTimeout(timer);
                resolve(request.phase);
            }
        };
        const timer = setTimeout(() => {
            request.off(VerificationRequestEvent.Change, check);
            reject(new Error(`phase ${VerificationPhase[request.phase]} after ${timeoutMs} ms`));
        }, timeoutMs);
        request.on(VerificationRequestEvent.Change, check);
        check();
    });
}

async function directChat() {
    const { room_id: roomId } = await client.createRoom({
        preset: "trusted_private_chat",
        is_direct: true,
        invite: [args.bot],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    for (let i = 0; i < 100 && !client.getRoom(roomId); i++) await sleep(100);
    return roomId;
}

async function sasStart(where) {
    const started = Date.now();
    const roomId = where === "dm" ? await directChat() : args.room;
    const request = await crypto.requestVerificationDM(args.bot, roomId);
    await untilPhase(request, [VerificationPhase.Ready, VerificationPhase.Cancelled], 30000);
    if (request.phase !== VerificationPhase.Ready) {
        return { phase: VerificationPhase[request.phase], cancellation: request.cancellationCode };
    }
    const readyMs = Date.now() - started;
    const verifier = await request.startVerification("m.sas.v1");
    const shown = new Promise((resolve) => verifier.once(VerifierEvent.ShowSas, resolve));
    const outcome = verifier.verify().then(
        () => ({ verified: true, error: null }),
        (exc) => ({ verified: false, error: String(exc) }),
    );
    const callbacks = await Promise.race([
        shown,
        outcome.then((o) => {
            throw new Error(`verification ended before the SAS: ${o.error}`);
        }),
    ]);
    sas = { request, verifier, callbacks, outcome };
    return {
        room_id: roomId,
        transaction_id: request.transactionId,
        ready_ms: readyMs,
        sas_ms: Date.now() - started,
        emoji: callbacks.sas.emoji ?? null,
        decimal: callbacks.sas.decimal ?? null,
    };
}

async function sasFinish(confirm) {
    const started = Date.now();
    if (confirm) {
        await sas.callbacks.confirm();
    } else {
        sas.callbacks.mismatch();
    }
    const outcome = await sas.outcome;
    const result = {
        ...outcome,
        done_ms: Date.now() - started,
        phase: VerificationPhase[sas.request.phase],
        cancellation: sas.request.cancellationCode ?? null,
    };
    sas = null;
    return result;
}

async function handle(line) {
    const [command, ...rest] = line.trim().split(/\s+/);
    if (command === "report") {
        const events = [];
        for (const eventId of rest) events.push(await inspect(eventId));
        out({ command, events, ...(await verificationStatus()) });
    } else if (command === "status") {
        out({ command, ...(await verificationStatus()) });
    } else if (command === "pin") {
        let error = null;
        try {
            await crypto.pinCurrentUserIdentity(args.bot);
        } catch (exc) {
            error = String(exc);
        }
        out({ command, error, ...(await verificationStatus()) });
    } else if (command === "sas-start") {
        out({ command, ...(await sasStart(rest[0])) });
    } else if (command === "sas-confirm" || command === "sas-mismatch") {
        out({ command, ...(await sasFinish(command === "sas-confirm")), ...(await verificationStatus()) });
    } else if (command === "send") {
        const text = line.trim().slice("send".length).trim();
        const { event_id } = await client.sendMessage(args.room, { msgtype: "m.text", body: text });
        out({ command, event_id });
    } else if (command) {
        out({ command, error: "unknown command" });
    }
}

const input = createInterface({ input: process.stdin });
for await (const line of input) {
    try {
        await handle(line);
    } catch (exc) {
        out({ error: String(exc?.stack ?? exc) });
    }
}
client.stopClient();
try {
    await client.logout(true);
} catch {
    // the device stays; the test homeserver is thrown away anyway
}
process.exit(0);
