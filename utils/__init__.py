"""Leaves every layer may use: errors, files, locks, project paths, flags, the CPU and the machine, vocabulary,
tagging, scoring, analysis, generated Markdown blocks and Ctrl-C before torch loads (interrupt)."""
