"""Our forward pass equals Hugging Face's on the same weights (transformers is the oracle)."""

import pytest
import torch

from hf_reference import build_hf_maskformer
from maskformer import MaskFormer, from_transformers

SHAPES = [
    (1, 64, 64),  # square; 16x16 first stage is not a multiple of the window (7)
    (2, 100, 130),  # non-square, batch of two, not a multiple of 32
    (3, 97, 61),  # odd sizes: patch padding and odd patch merging
    (1, 224, 224),  # every stage a multiple of 7: no window padding at all
]


@pytest.fixture(scope="module", params=["swin", "resnet"])
def pair(request):
    hf = build_hf_maskformer(request.param)
    return hf, from_transformers(hf)


@pytest.mark.parametrize("batch,height,width", SHAPES)
def test_forward_matches_transformers(pair, batch, height, width):
    hf, ours = pair
    torch.manual_seed(height * width)
    images = torch.randn(batch, 3, height, width)
    with torch.no_grad():
        ref, out = hf(images), ours(images)
    assert isinstance(ours, MaskFormer) and not ours.training
    assert out.pred_masks.shape == (batch, 10, -(-height // 4), -(-width // 4))
    torch.testing.assert_close(out.pred_logits, ref.class_queries_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.pred_masks, ref.masks_queries_logits, rtol=0, atol=1e-4)


def test_all_weights_are_used(pair):
    """Every HF tensor that matters lands somewhere: perturbing any of ours changes the output."""
    hf, ours = pair
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        base = ours(images).pred_masks
        # a weight that a broken mapping would leave at its fresh initial value
        ours.transformer.layers[-1].cross_attn.v_proj.weight.add_(0.1)
        assert not torch.allclose(ours(images).pred_masks, base)
        ours.transformer.layers[-1].cross_attn.v_proj.weight.sub_(0.1)
