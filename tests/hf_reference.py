"""Small random Hugging Face MaskFormer models: the reference our parity tests compare against."""

from __future__ import annotations

import torch


def build_hf_maskformer(backbone: str = "swin", num_labels: int = 5, seed: int = 0, aux: bool = False):
    """A tiny ``MaskFormerForInstanceSegmentation`` in eval mode with every weight randomised.

    HF initialises some tensors to constants (zero relative-position tables, unit BatchNorm statistics);
    they are perturbed so that a wrongly mapped weight cannot hide behind a constant.
    """
    from transformers import (DetrConfig, MaskFormerConfig, MaskFormerForInstanceSegmentation, MaskFormerSwinConfig,
                              ResNetConfig)
    from transformers.utils import logging

    logging.set_verbosity_error()  # HF warns that "maskformer-swin" is not in its own supported list
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if backbone == "swin":
        bb = MaskFormerSwinConfig(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=7,
                                  drop_path_rate=0.0, out_features=stages)
    else:
        bb = ResNetConfig(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[2, 1, 2, 1],
                          layer_type="bottleneck", out_features=stages)
    dec = DetrConfig(d_model=64, decoder_layers=3, decoder_attention_heads=4, decoder_ffn_dim=128, num_queries=10,
                     encoder_layers=1)
    config = MaskFormerConfig(backbone_config=bb, decoder_config=dec, fpn_feature_size=64, mask_feature_size=64,
                              num_labels=num_labels, use_auxiliary_loss=aux,
                              id2label={i: f"class_{i}" for i in range(num_labels)})
    torch.manual_seed(seed)
    model = MaskFormerForInstanceSegmentation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
    return model


def build_hf_mask2former(backbone: str = "swin", num_labels: int = 5, seed: int = 0):
    """A tiny ``Mask2FormerForUniversalSegmentation`` in eval mode with every weight randomised.

    Swin uses window 3 so that, at the test sizes (>= 97 px), every stage is larger than the window:
    Hugging Face's Swin shrinks the window to the map (and drops the shift) when a stage is not,
    which the original Swin does not do, and it keeps the shrunk window for later calls.
    """
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig, SwinConfig
    from transformers.utils import logging

    logging.set_verbosity_error()
    stages = ["stage1", "stage2", "stage3", "stage4"]
    if backbone == "swin":
        bb = SwinConfig(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=3,
                        drop_path_rate=0.0, out_features=stages)
    else:
        bb = ResNetConfig(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[2, 1, 2, 1],
                          layer_type="bottleneck", out_features=stages)
    config = Mask2FormerConfig(backbone_config=bb, feature_size=64, mask_feature_size=64, hidden_dim=64,
                               encoder_feedforward_dim=128, encoder_layers=2, decoder_layers=4, num_attention_heads=4,
                               dim_feedforward=128, num_queries=10, num_labels=num_labels,
                               id2label={i: f"class_{i}" for i in range(num_labels)})
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
    return model
