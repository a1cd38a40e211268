"""The paper's experiments as data (plan.py) and the report rendered from finished runs (report.py)."""
