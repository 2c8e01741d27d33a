"""cvdbot, the service: mail in, the policy core, the watch, the outbox and mail out, wired
together by app.py and started by cli.py."""
