"""`udl evaluate`: sample quality of runs or image folders on udl's feature networks (shipped, or trained once and cached)."""

from udlcli.tasks.evaluate.run import EvalReport, evaluate

__all__ = ["EvalReport", "evaluate"]
