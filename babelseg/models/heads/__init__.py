"""babelseg.models.heads: heads on top of the pixel decoder."""

from babelseg.models.heads.pixel_embedding import PixelEmbeddingHead

__all__ = ["PixelEmbeddingHead"]
