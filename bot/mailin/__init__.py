"""Mail in: every mail from the mailbox (IMAP, imap.py) or the `cvdbot ingest` pipe goes
through intake.py, which runs the named steps in steps/ over the parsed mail (parse.py)."""
