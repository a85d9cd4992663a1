"""genlab: a generative-models lab on PyTorch Lightning."""

__version__ = "0.1.0"
