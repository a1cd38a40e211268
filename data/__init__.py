"""Reading, converting and batching the datasets: RIN-format files, the published releases, spaCy tools."""
