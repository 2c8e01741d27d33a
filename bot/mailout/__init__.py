"""Mail out: composing reporter mail from the templates (compose.py), sealing it with PGP
(sealing.py), queuing it and delivering it over SMTP (reporter.py)."""
