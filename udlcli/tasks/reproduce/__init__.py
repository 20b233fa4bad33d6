"""`udl reproduce`: the report's study as steps of one YAML file (study), run in order (run, steps), written up (report)."""

from udlcli.tasks.reproduce.run import ReproduceResult, reproduce

__all__ = ["ReproduceResult", "reproduce"]
