"""babelseg.models.decoders"""
