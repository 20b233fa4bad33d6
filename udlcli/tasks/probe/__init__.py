"""`udl probe`: a linear probe and a kNN on a run's frozen features (run.py)."""

from udlcli.tasks.probe.run import ProbeResult, probe

__all__ = ["ProbeResult", "probe"]
