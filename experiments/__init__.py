"""The paper's experiments as data (plan.py), where and how each run trains (launch.py: this machine's GPUs and
cores, or a SLURM job array), the report rendered from finished runs (report.py) and the speed tables rendered
from bench.py's JSON (speed_tables.py)."""
