"""`udl runs`: list the run folders under a root and compare runs, from their files alone."""

from udlcli.tasks.runs.listing import Comparison, RunInfo, compare_runs, list_runs, read_run

__all__ = ["Comparison", "RunInfo", "compare_runs", "list_runs", "read_run"]
