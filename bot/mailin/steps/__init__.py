"""The intake's named steps, run in this order by `bot.mailin.intake.MailIntake`:

parse (`bot.mailin.parse`) -> decrypt and verify (`unwrap`) -> classify and match to a case
(`classify`) -> store, then queue the thread posts: a new report (`open_case`), a follow-up
or automatic mail (`follow_up`), and for both the attachments (`queue_attachments`).
Every step reads and fills one `incoming.IncomingMail`.
"""
