"""udl embed."""
