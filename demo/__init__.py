"""`make demo`: a local Synapse, mailbox and SMTP server, the bot, and two sample reports."""
