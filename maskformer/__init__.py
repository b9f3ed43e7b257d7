"""MaskFormer in plain PyTorch: mask classification for semantic, instance and panoptic segmentation.

>>> from maskformer import MaskFormer, MaskFormerConfig
>>> model = MaskFormer(MaskFormerConfig.swin_tiny(num_classes=150))
"""

from .config import MaskFormerConfig
from .builders import from_transformers
from .loss import MaskFormerLoss
from .matcher import HungarianMatcher
from .model import MaskFormer
from .outputs import MaskFormerOutput

__version__ = "0.1.0"
__all__ = ["MaskFormer", "MaskFormerConfig", "MaskFormerOutput", "from_transformers", "HungarianMatcher", "MaskFormerLoss"]
