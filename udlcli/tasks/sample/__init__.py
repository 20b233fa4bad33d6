"""`udl sample KIND [RUN]`: new images, latent walks and latent grids of any run that can make them (run.py)."""

from udlcli.tasks.sample.common import SampleResult
from udlcli.tasks.sample.run import sample

__all__ = ["SampleResult", "sample"]
