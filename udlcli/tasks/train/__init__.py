"""`udl train`: a registered model fitted with the shared trainer into runs/<task>/<name>/."""

from udlcli.core.lifecycle import RunOptions, TrainResult
from udlcli.tasks.train.run import resume, train

__all__ = ["RunOptions", "TrainResult", "resume", "train"]
