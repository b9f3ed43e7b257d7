"""With every Mask2Former switch on, our forward pass equals transformers' Mask2Former on the same weights."""

import pytest
import torch

from hf_reference import build_hf_mask2former
from maskformer import MaskFormer, from_transformers

SHAPES = [
    (2, 97, 130),  # odd, non-square, batch of two: Swin pads windows and patch merging
    (1, 128, 128),  # square, every map a power of two
    (2, 100, 113),  # 1/32 map of 4x4, 1/8 map of 13x15
]


@pytest.fixture(scope="module", params=["swin", "resnet"])
def pair(request):
    hf = build_hf_mask2former(request.param)
    return hf, from_transformers(hf)


@pytest.mark.parametrize("batch,height,width", SHAPES)
def test_forward_and_aux_match_transformers(pair, batch, height, width):
    hf, ours = pair
    torch.manual_seed(height * width)
    images = torch.randn(batch, 3, height, width)
    with torch.no_grad():
        ref = hf(images, output_auxiliary_logits=True)
        out = ours(images, return_aux=True)
        final = ours(images)  # eval mode: the last prediction only (and the mask head folded away)
    assert isinstance(ours, MaskFormer) and not ours.training and final.aux_outputs == []
    assert out.pred_masks.shape == (batch, 10, -(-height // 4), -(-width // 4))
    for pred in (out, final):
        torch.testing.assert_close(pred.pred_logits, ref.class_queries_logits, rtol=0, atol=1e-4)
        torch.testing.assert_close(pred.pred_masks, ref.masks_queries_logits, rtol=0, atol=1e-4)
    # the prediction before the first layer and after each of the first dec_layers - 1 layers
    assert len(out.aux_outputs) == len(ref.auxiliary_logits) == ours.config.dec_layers
    for aux, hf_aux in zip(out.aux_outputs, ref.auxiliary_logits):
        torch.testing.assert_close(aux["pred_logits"], hf_aux["class_queries_logits"], rtol=0, atol=1e-4)
        torch.testing.assert_close(aux["pred_masks"], hf_aux["masks_queries_logits"], rtol=0, atol=1e-4)


def test_every_switch_matters(pair):
    """Each Mask2Former switch of the converted model changes the output: none is silently a no-op."""
    hf, ours = pair
    images = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        base = ours(images).pred_masks
        for switch in ("masked_attention", "cross_attention_first"):
            setattr(ours.config, switch, not getattr(ours.config, switch))
            for layer in ours.transformer.layers:
                layer.cross_attention_first = ours.config.cross_attention_first
            try:
                assert (ours(images).pred_masks - base).abs().max() > 1e-3, switch
            finally:
                setattr(ours.config, switch, not getattr(ours.config, switch))
                for layer in ours.transformer.layers:
                    layer.cross_attention_first = ours.config.cross_attention_first


def test_from_pretrained_reads_a_saved_mask2former(pair, tmp_path):
    """A directory written by transformers (the published checkpoints' names) loads with no missing or
    unexpected key and gives the same outputs."""
    hf, _ = pair
    hf.save_pretrained(tmp_path)
    ours = MaskFormer.from_pretrained(tmp_path)
    assert ours.config.masked_attention and ours.config.pixel_decoder == "msdeformattn"
    assert ours.config.dec_layers == hf.config.decoder_layers - 1
    images = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        ref, out = hf(images), ours(images)
    torch.testing.assert_close(out.pred_logits, ref.class_queries_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.pred_masks, ref.masks_queries_logits, rtol=0, atol=1e-4)
    ours.save_pretrained(tmp_path / "ours")  # and round-trips through our own format
    again = MaskFormer.from_pretrained(tmp_path / "ours")
    with torch.no_grad():
        torch.testing.assert_close(again(images).pred_masks, out.pred_masks, rtol=0, atol=0)


def test_mask2former_hub_id_offline_says_what_to_do(monkeypatch):
    """A published Mask2Former id fails offline as a MaskFormer one does: one message, what to do instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # not reachable, and not in the cache
    with pytest.raises(RuntimeError, match="facebook/mask2former-swin-tiny-ade-semantic") as info:
        MaskFormer.from_pretrained("facebook/mask2former-swin-tiny-ade-semantic")
    assert "hf download facebook/mask2former-swin-tiny-ade-semantic --local-dir DIR" in str(info.value)
