"""What runs on the clock: warnings and escalation (deadline_warnings.py over
warning_points.py), the managers' digest (digest*.py, chart.py), and the scheduler."""
