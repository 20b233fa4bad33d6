"""udl denoise."""
