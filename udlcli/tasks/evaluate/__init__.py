"""udl evaluate."""
