"""udl: unsupervised deep learning on image data, from one command line."""

__version__ = "0.1.0"
