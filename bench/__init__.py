"""Benchmarks: the bot against a bare matrix-nio baseline, on real servers, in the same run.

Run from the repository root: `python -m bench.command_roundtrip`, `python -m bench.ingest`
(or `make bench`). Every figure is reported as a ratio to a baseline measured in the same run
on the same servers, because absolute times on a shared machine drift while ratios hold.
"""
