"""`udl embed`: a run's latent space mapped to 2-D (PCA, t-SNE), plotted and scored."""

from udlcli.tasks.embed.run import EmbedResult, embed

__all__ = ["EmbedResult", "embed"]
