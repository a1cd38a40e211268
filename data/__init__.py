"""Reading, converting and batching the datasets: RIN-format files (loader.py), the published releases
(convert.py) and where they come from (fetch.py: the shared folder, a cache, a download, a local folder or
archive), spaCy tools, and generated data for tests and checks (synthetic.py)."""
