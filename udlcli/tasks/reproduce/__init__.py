"""udl reproduce."""
