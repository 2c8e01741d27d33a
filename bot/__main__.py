"""`python -m bot` runs the same command line as the `cvdbot` console script."""

from bot.cli import main

raise SystemExit(main())
