"""udl tune."""
