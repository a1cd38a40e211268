"""Data, vocabulary, tagging, scoring and training helpers for RIN."""
