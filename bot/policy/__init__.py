"""The policy core, pure and without I/O: case states (lifecycle.py), the promises
(promises.py), the working-day calendar (workdays.py) and the fix clock (fix_clock.py)."""
