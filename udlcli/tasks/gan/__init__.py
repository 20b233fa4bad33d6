"""udl gan."""
