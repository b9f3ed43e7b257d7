"""Checkpoints: Hugging Face directories, our own round trip, and clear errors offline or on bad input."""

import json

import pytest
import torch

from hf_reference import build_hf_maskformer
from maskformer import MaskFormer, MaskFormerConfig


def save_hf(model, directory, pickled=False):
    """HF's save_pretrained; ``pickled`` rewrites the weights as the older ``pytorch_model.bin``."""
    model.save_pretrained(directory)
    if pickled:
        from safetensors.torch import load_file

        torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
        (directory / "model.safetensors").unlink()


@pytest.mark.parametrize("backbone", ["swin", "resnet"])
@pytest.mark.parametrize("pickled", [False, True], ids=["safetensors", "pytorch_model.bin"])
def test_from_pretrained_hf_directory(tmp_path, backbone, pickled):
    hf = build_hf_maskformer(backbone, num_labels=4)
    save_hf(hf, tmp_path, pickled)
    ours = MaskFormer.from_pretrained(tmp_path)
    assert not ours.training
    assert ours.config.backbone == backbone and ours.config.num_classes == 4
    assert ours.config.id2label == {i: f"class_{i}" for i in range(4)}
    images = torch.randn(2, 3, 72, 100)
    with torch.no_grad():
        ref, out = hf(images), ours(images)
    torch.testing.assert_close(out.pred_logits, ref.class_queries_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.pred_masks, ref.masks_queries_logits, rtol=0, atol=1e-4)


def test_pickled_weights_load_tensors_only(tmp_path, monkeypatch):
    save_hf(build_hf_maskformer("resnet"), tmp_path, pickled=True)
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    MaskFormer.from_pretrained(tmp_path)
    assert seen.get("weights_only") is True


def test_own_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = MaskFormerConfig.tiny(num_classes=3, id2label={0: "sky", 1: "tree", 2: "road"})
    model = MaskFormer(cfg).eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["format"] == "maskformer"
    loaded = MaskFormer.from_pretrained(tmp_path)
    assert loaded.config == cfg
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).pred_masks, model(images).pred_masks, rtol=0, atol=0)


def test_hub_id_offline_says_what_to_do(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    import maskformer.pretrained

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setattr(maskformer.pretrained, "hub_endpoint_reachable", lambda: True)  # the download itself fails
    with pytest.raises(RuntimeError, match="could not get 'facebook/maskformer-swin-tiny-ade'") as info:
        MaskFormer.from_pretrained("facebook/maskformer-swin-tiny-ade")
    assert "hf download facebook/maskformer-swin-tiny-ade --local-dir DIR" in str(info.value)


def test_unreachable_hub_fails_at_once(monkeypatch):
    """No retries when the Hub cannot be reached at all: the cache is tried, then one message."""
    import time

    import maskformer.pretrained

    monkeypatch.setattr(maskformer.pretrained, "hub_endpoint_reachable", lambda: False)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="cannot reach the Hugging Face Hub") as info:
        MaskFormer.from_pretrained("someone/not-in-the-cache")
    assert time.perf_counter() - start < 10
    assert "hf download someone/not-in-the-cache --local-dir DIR" in str(info.value)


def test_bad_paths_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dir does not exist: pass a checkpoint directory"):
        MaskFormer.from_pretrained(tmp_path / "missing" / "dir")
    (tmp_path / "config.json").write_text(json.dumps({"format": "maskformer", **MaskFormerConfig.tiny().to_dict()}))
    with pytest.raises(FileNotFoundError, match="no weights in"):
        MaskFormer.from_pretrained(tmp_path)


def test_unknown_hf_key_is_reported(tmp_path):
    from maskformer.convert import hf_state_dict_to_ours

    hf = build_hf_maskformer("swin")
    sd = dict(hf.state_dict(), **{"model.some_new_module.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="some_new_module"):
        hf_state_dict_to_ours(sd, MaskFormerConfig.tiny())
