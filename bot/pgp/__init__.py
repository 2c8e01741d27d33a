"""OpenPGP: the gpg wrapper (gpg.py, callers import from there), PGP/MIME out and in, keys CLI."""
