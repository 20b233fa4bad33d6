"""The shared core every command builds on: the run lifecycle, the one trainer, model contracts, checkpoints, run folders."""
