"""babelseg.models.backbones"""
