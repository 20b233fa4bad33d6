"""`udl tune`: an optuna study over an objective's search space (run), its spaces and objectives, storages and outputs."""

from udlcli.tasks.tune.run import TuneOptions, TuneResult, tune
from udlcli.tasks.tune.space import objectives

__all__ = ["TuneOptions", "TuneResult", "objectives", "tune"]
