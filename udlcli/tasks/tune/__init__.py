"""`udl tune`: an optuna study over an objective's search space (run), its spaces and objectives, storages and outputs."""

from udlcli.tasks.tune.run import DEFAULT_TRIALS, TuneOptions, TuneResult, tune
from udlcli.tasks.tune.space import OBJECTIVES

__all__ = ["DEFAULT_TRIALS", "OBJECTIVES", "TuneOptions", "TuneResult", "tune"]
