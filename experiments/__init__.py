"""The paper's experiments as data (plan.py), Table 3's settings per dataset (presets.py), a run's settings and
resume rules (settings.py), where and how each run trains (launch.py: this machine's GPUs and cores, or a SLURM job
array) and how long the runs take (budget.py), the report rendered from finished runs (report.py), the studies of
test files and mention readings (studies.py) and the speed tables rendered from bench.py's JSON
(speed_tables.py)."""
