"""babelseg.models.backbones: image -> feature pyramid at strides 4, 8, 16, 32.

``tiny`` (CPU default), ``resnet`` (torchvision/timm weight layout), ``hf_auto`` (any transformers
``AutoBackbone``; imported on demand because transformers is slow to import), ``clip_vit``
(CLIP's ViT image encoder, on demand too), ``vit_pyramid`` (ViTDet's simple feature pyramid for
plain ViTs), ``weights`` (loading local weight files). Build by name with
:func:`babelseg.models.builders.build_backbone`.
"""

from babelseg.models.backbones.base import Backbone
from babelseg.models.backbones.resnet import ResNetBackbone
from babelseg.models.backbones.tiny import TinyConvBackbone
from babelseg.models.backbones.weights import (
    LoadReport,
    load_backbone_weights,
    load_state_dict_file,
)

__all__ = [
    "Backbone",
    "LoadReport",
    "ResNetBackbone",
    "TinyConvBackbone",
    "load_backbone_weights",
    "load_state_dict_file",
]
