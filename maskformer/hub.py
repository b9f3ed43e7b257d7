"""Saving and loading checkpoints: our own directories, Hugging Face MaskFormer directories, Hub ids.

A checkpoint directory holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, or
sharded ``*.safetensors`` with an index). Ours are recognised by ``"format": "maskformer"`` in
``config.json`` and hold a MaskFormer or a per-pixel baseline (``"architecture"``); anything else
must be a Hugging Face ``MaskFormerForInstanceSegmentation`` checkpoint such as
``facebook/maskformer-swin-tiny-ade``, whose config and weights are converted on load.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from .config import MaskFormerConfig
from .convert import hf_config_to_ours, hf_state_dict_to_ours, load_converted

FORMAT = "maskformer"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")  # "name" or "owner/name"


def save_pretrained(model, directory: str | os.PathLike) -> None:
    """Write ``config.json`` and ``model.safetensors`` of a MaskFormer or a PerPixelBaseline;
    :func:`from_pretrained` reads them back into the same kind of model."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, **model.config.to_dict()}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def _load_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.exists():  # sharded: the index maps each key to its shard
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(directory / shard)).items()}
    if (directory / "model.safetensors").exists():
        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").exists():  # pickle: load tensors only, never arbitrary objects
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no weights in {directory}: expected one of {WEIGHT_FILES} or model.safetensors.index.json "
                            f"(found: {sorted(p.name for p in directory.iterdir())})")


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision,
                                      allow_patterns=["config.json", "*.safetensors", "*.safetensors.index.json"]))
    except Exception as err:  # connection errors, unknown repos, gated repos ...
        raise RuntimeError(
            f"could not get {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "If this machine is offline, download the checkpoint elsewhere with "
            f"`huggingface-cli download {repo_id} --local-dir DIR`, copy DIR here and call "
            "MaskFormer.from_pretrained('DIR') (or pass DIR as --checkpoint); a copy already in the Hub cache is used when HF_HUB_OFFLINE=1 is set."
        ) from err


def from_pretrained(name_or_path: str | os.PathLike, revision: str | None = None):
    """Build the model a checkpoint describes and load its weights, with no missing or unexpected key.

    Our own directories give a :class:`~maskformer.MaskFormer` or a
    :class:`~maskformer.baseline.PerPixelBaseline`, as their ``architecture`` says; Hugging Face
    checkpoints are always MaskFormers.

    Args:
        name_or_path: a directory (ours or Hugging Face layout) or a Hub id such as
            ``"facebook/maskformer-swin-tiny-ade"`` (downloaded with ``huggingface_hub``).
        revision: a Hub branch, tag or commit (Hub ids only).

    The model is returned in eval mode.
    """
    from .model import MaskFormer, build_model

    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        if path.exists() or not HUB_ID.match(str(name_or_path)):
            raise FileNotFoundError(f"{name_or_path} is not a checkpoint directory (expected a folder with config.json "
                                    "and model.safetensors, or a Hub id like 'facebook/maskformer-swin-tiny-ade')")
        path = _download(str(name_or_path), revision)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} not found: a checkpoint directory needs config.json next to its weights")
    raw = json.loads(config_file.read_text())
    weights = _load_weights(path)
    if raw.get("format") == FORMAT:
        config = MaskFormerConfig.from_dict({k: v for k, v in raw.items() if k != "format"})
        model = build_model(config)
        load_converted(model, weights, source=str(path))
    else:
        if raw.get("model_type") != "maskformer":
            raise ValueError(f"{config_file}: model_type is {raw.get('model_type')!r}; expected our format or a Hugging "
                             "Face 'maskformer' checkpoint")
        config = hf_config_to_ours(raw)
        config.extra["source"] = str(name_or_path)
        model = MaskFormer(config)
        load_converted(model, hf_state_dict_to_ours(weights, config), source=str(path))
    return model.eval()
