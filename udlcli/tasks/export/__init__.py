"""`udl export`: a run's model as safetensors or ONNX files, with config.json and a model card."""

from udlcli.tasks.export.run import ExportResult, export

__all__ = ["ExportResult", "export"]
