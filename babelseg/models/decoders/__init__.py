"""babelseg.models.decoders: pixel decoders (backbone pyramid -> per-pixel features)."""

from babelseg.models.decoders.fpn import FPNPixelDecoder, PixelDecoderOutput

__all__ = ["FPNPixelDecoder", "PixelDecoderOutput"]
