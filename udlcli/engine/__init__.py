"""The engine: run specs, the generic trainer, checkpoints, run folders and the command functions."""
