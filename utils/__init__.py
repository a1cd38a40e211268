"""Leaves every layer may use: errors, files, locks, project paths, flags, the machine, vocabulary, tagging,
scoring and analysis."""
