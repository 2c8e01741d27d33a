"""The outbox: typed payloads (payloads.py), the sender loop (worker.py) and its Matrix and
mail channels (matrix_channel.py, mail_channel.py)."""
