"""udl: unsupervised deep learning on image data, from one command line (and `udlcli.load` / `udlcli.train` in Python)."""

__version__ = "0.1.0"

__all__ = ["Model", "denoise", "finetune", "gan", "load", "train"]


def __getattr__(name: str):
    # Lazy: `import udlcli` (and `udl --help`) must not import torch; udlcli.load does.
    if name in __all__:
        from udlcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'udlcli' has no attribute {name!r}")
