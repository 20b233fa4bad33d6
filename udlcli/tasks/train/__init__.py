"""udl train."""
