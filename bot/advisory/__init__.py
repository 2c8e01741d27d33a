"""The advisory of a fixed case: CSAF 2.0 (`csaf.py`, validated offline against the official
schema shipped in `schemas/`) and Markdown (`markdown.py`), built from one `AdvisoryFacts`
(`facts.py`). `cvss_metrics.py` turns a stored CVSS vector into the FIRST JSON form."""
