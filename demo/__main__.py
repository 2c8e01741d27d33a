"""`make demo`: bring up everything locally and show a newcomer what cvdbot does.

Starts a throw-away Synapse, Dovecot and SMTP server on loopback, registers a bot and a team
member ("alice"), has alice create an encrypted case room and invite the bot, starts
`cvdbot run`, mails in two reports (one Dutch, one English), lets alice triage them with
commands, and prints the room as alice's client decrypts it, plus the mails the reporters got.
`python -m demo --keep` leaves everything running until Ctrl-C so you can look around.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
from pathlib import Path

from demo.transcript import format_transcript
from tests.harness.bot import deploy
from tests.harness.dovecot import DovecotServer
from tests.harness.gpg_agents import stop_agents_under
from tests.harness.person import Person
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report

WORKDIR = Path("demo-data")


def say(text: str) -> None:
    print(f"\n>>> {text}", flush=True)


async def demo(keep: bool) -> int:
    if WORKDIR.exists():
        shutil.rmtree(WORKDIR)
    WORKDIR.mkdir()
    WORKDIR.chmod(0o755)
    say("Starting Synapse, Dovecot and an SMTP server on loopback ports…")
    synapse = SynapseServer(WORKDIR / "synapse")
    dovecot = DovecotServer(WORKDIR / "dovecot")
    smtp = SmtpServer()
    synapse.start()
    dovecot.start()
    smtp.start()
    alice: Person | None = None
    deployment = None
    try:
        password = "alice-demo-password"
        alice_id = synapse.register("alice", password)
        alice = await Person.create(synapse.url, alice_id, password, WORKDIR / "alice-store")
        deployment = await deploy(WORKDIR / "bot", synapse, dovecot, smtp, alice)
        say(f"Synapse {synapse.url}; case room {deployment.room_id} (encrypted), made by alice")
        say(f"Config written to {deployment.write_config()}; starting `cvdbot run`…")
        deployment.start_bot()

        say("Two reports arrive in the security mailbox (IMAP)…")
        deployment.append_mail(
            report(
                subject="Lek in parkeervergunning",
                body=DUTCH_BODY,
                sender="Eva Onderzoeker <eva@researcher.example>",
            )
        )
        deployment.append_mail(
            report(
                subject="XSS in parking permit search",
                body=ENGLISH_BODY,
                sender="Sam Finder <sam@finder.example>",
            )
        )
        roots = []
        for subject in ("Lek in parkeervergunning", "XSS in parking permit search"):
            roots.append(
                await alice.wait_for_message(
                    deployment.room_id,
                    lambda m, s=subject: m.thread_root is None and s in m.body,
                    timeout=60,
                )
            )
        say("alice triages in the threads: !ack both, !assess the Dutch one, !status…")
        dutch, english = roots
        await alice.send(deployment.room_id, "!ack", thread_root=dutch.event_id)
        await alice.send(deployment.room_id, "!ack", thread_root=english.event_id)
        await alice.wait_for_message(
            deployment.room_id,
            lambda m: m.thread_root == dutch.event_id and "acknowledged" in m.body,
        )
        await alice.send(
            deployment.room_id,
            "!assess medium CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N Reflected XSS; "
            "we fix it in the next release.",
            thread_root=dutch.event_id,
        )
        await alice.send(deployment.room_id, "!status", thread_root=english.event_id)
        await smtp.wait_for_async(3, timeout=60)
        await alice.wait_for_message(
            deployment.room_id,
            lambda m: m.thread_root == english.event_id and m.body.startswith("CVD-"),
        )
        await asyncio.sleep(2)

        say("The case room, as alice's client decrypts it:")
        print(format_transcript(alice.messages(deployment.room_id, include_own=True)))
        say("Mail the reporters received (SMTP):")
        for mail in smtp.messages:
            print(
                f"- to {', '.join(mail.rcpt_tos)}: {mail.message['Subject']}  "
                f"[{mail.message.get_content_type()}]"
            )
        say(f"Everything (config, database, logs) is in {WORKDIR.resolve()}.")
        if keep:
            say("Running until Ctrl-C…")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        return 0
    finally:
        if deployment is not None and deployment.bot is not None:
            deployment.bot.stop()
        if alice is not None:
            await alice.close()
        smtp.stop()
        dovecot.stop()
        synapse.stop()
        stop_agents_under(WORKDIR)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")
    args = parser.parse_args()
    return asyncio.run(demo(args.keep))


if __name__ == "__main__":
    sys.exit(main())
