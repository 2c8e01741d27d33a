"""Matrix: the E2EE client and sync loop (client.py), the posting helpers every room message
goes through (posts.py), and what the team reads: the case root and status card (render.py)."""
