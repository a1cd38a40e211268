"""The paper's experiments as data (plan.py), the report rendered from finished runs (report.py) and the speed
tables rendered from bench.py's JSON (speed_tables.py)."""
