"""Prints cvdbot's runtime dependencies from pyproject.toml, one per line (pip's -r format).

The image installs them in a layer of their own, before the code, and `make image` fills
container/wheels with them; both read them here, so pyproject.toml stays the one list.
Usage: python3 container/requirements.py [pyproject.toml]
"""

import sys
import tomllib

path = sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"
with open(path, "rb") as handle:
    print("\n".join(tomllib.load(handle)["project"]["dependencies"]))
