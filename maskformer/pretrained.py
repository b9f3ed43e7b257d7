"""Checkpoint directories on disk and on the Hub: writing them, reading them, and the mixin that gives
every model of this package ``from_pretrained`` / ``save_pretrained``.

A checkpoint directory holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``, or
sharded ``*.safetensors`` with an index). Ours are recognised by ``"format": "maskformer"`` in
``config.json`` and hold a MaskFormer or a per-pixel baseline (``"architecture"``); anything else
must be a Hugging Face ``MaskFormerForInstanceSegmentation`` checkpoint such as
``facebook/maskformer-swin-tiny-ade`` or a ``Mask2FormerForUniversalSegmentation`` one such as
``facebook/mask2former-swin-tiny-ade-semantic``, whose config and weights are converted on read.

This module knows no model class: :func:`read_pretrained` returns a config and a state dict, and
the caller builds the model (:meth:`PretrainedMixin.from_pretrained` builds its own class,
:func:`maskformer.hub.from_pretrained` the one the config names).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from .config import MaskFormerConfig
from .convert import hf_config_to_ours, hf_state_dict_to_ours, load_converted

__all__ = ["PretrainedMixin", "save_pretrained", "read_pretrained", "FORMAT", "WEIGHT_FILES"]

FORMAT = "maskformer"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_MODEL_TYPES = ("maskformer", "mask2former")  # Hugging Face checkpoints that convert.py reads
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")  # "name" or "owner/name"


def save_pretrained(model, directory: str | os.PathLike) -> None:
    """Write ``config.json`` and ``model.safetensors`` of a MaskFormer or a PerPixelBaseline;
    :func:`read_pretrained` reads them back."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, **model.config.to_dict()}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error type for a bad header or a short file
        raise ValueError(f"{path} is truncated or corrupt ({str(err).splitlines()[0]}); copy the checkpoint "
                         f"again, or write it anew with save_pretrained") from None


def _load_weights(directory: Path) -> dict[str, torch.Tensor]:
    index = directory / "model.safetensors.index.json"
    if index.exists():  # sharded: the index maps each key to its shard
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        return {k: v for shard in shards for k, v in _read_safetensors(directory / shard).items()}
    if (directory / "model.safetensors").exists():
        return _read_safetensors(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").exists():  # pickle: load tensors only, never arbitrary objects
        path = directory / "pytorch_model.bin"
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path} is truncated or corrupt ({str(err).splitlines()[0]}); copy the "
                             f"checkpoint again") from None
    raise FileNotFoundError(f"no weights in {directory}: expected one of {WEIGHT_FILES} or model.safetensors.index.json "
                            f"(found: {sorted(p.name for p in directory.iterdir())})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore the file, or write the checkpoint anew "
                         f"with save_pretrained") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not the object of a checkpoint config")
    return data


def _is_model_config(path: Path) -> bool:
    """Whether ``path`` is a model's config.json (ours or Hugging Face's), not, e.g., a training run's."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and ("format" in raw or "model_type" in raw)


def hub_endpoint_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds (True behind a proxy,
    which we cannot probe). Used to fail at once offline instead of after the client's retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_hint(repo_id: str, what: str = "checkpoint", repo_type: str = "model") -> str:
    """What to do when ``repo_id`` cannot be downloaded: the ``hf download`` command of huggingface_hub."""
    flag = "" if repo_type == "model" else f" --repo-type {repo_type}"
    return (f"download the {what} on a machine with internet (`hf download {repo_id}{flag} --local-dir DIR`), "
            f"copy DIR here and pass DIR instead; a copy already in the Hugging Face cache is used with HF_HUB_OFFLINE=1")


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "*.safetensors", "*.safetensors.index.json"]
    if not hub_endpoint_reachable():
        try:  # offline: the Hub cache may still hold it
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
        except Exception:
            raise RuntimeError(f"cannot reach the Hugging Face Hub to get {repo_id!r} and it is not in the local "
                               f"cache: {offline_hint(repo_id)}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as err:  # unknown repos, gated repos, connection lost ...
        raise RuntimeError(f"could not get {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: "
                           f"{str(err).splitlines()[0]}); {offline_hint(repo_id)}") from None


def resolve_checkpoint_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local directory of a checkpoint: a folder as given, or a Hub id downloaded (or found in the cache)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if (path / "model" / "config.json").exists() and not _is_model_config(path / "config.json"):
            raise FileNotFoundError(f"{path} is a training run's directory, not a checkpoint; its model is "
                                    f"{path / 'model'}: pass that instead")
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path / 'config.json'} not found: a checkpoint directory needs config.json next "
                                    f"to its weights (write one with save_pretrained)")
        return path
    if path.exists():
        hint = ("; a training checkpoint (.pt) resumes training with `train --resume`, the model to load is the "
                "run's model/ folder" if path.suffix == ".pt" else "")
        raise FileNotFoundError(f"{name_or_path} is a file, not a checkpoint directory (a folder with config.json and "
                                f"model.safetensors){hint}")
    if not HUB_ID.match(str(name_or_path)) or str(name_or_path).startswith((".", "/", "~")):
        raise FileNotFoundError(f"{name_or_path} does not exist: pass a checkpoint directory (config.json and "
                                "model.safetensors) or a Hub id like 'facebook/maskformer-swin-tiny-ade'")
    return _download(str(name_or_path), revision)


def read_pretrained(name_or_path: str | os.PathLike, revision: str | None = None
                    ) -> tuple[MaskFormerConfig, dict[str, torch.Tensor], str]:
    """``(config, state dict in our names, source)`` of a checkpoint directory or Hub id.

    Our own format is read as it is; a Hugging Face MaskFormer checkpoint has its config and weights
    converted (:mod:`maskformer.convert`). Every problem raises an error that names the file.
    """
    path = resolve_checkpoint_dir(name_or_path, revision)
    config_file = path / "config.json"
    raw = _read_json(config_file)
    if raw.get("format") == FORMAT:
        try:
            config = MaskFormerConfig.from_dict({k: v for k, v in raw.items() if k != "format"})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{config_file}: {err}") from None
        return config, _load_weights(path), str(path)
    if raw.get("model_type") not in HF_MODEL_TYPES:
        raise ValueError(f"{config_file}: model_type is {raw.get('model_type')!r}; expected our format "
                         "(\"format\": \"maskformer\") or a Hugging Face 'maskformer' or 'mask2former' checkpoint")
    config = hf_config_to_ours(raw)
    config.extra["source"] = str(name_or_path)
    return config, hf_state_dict_to_ours(_load_weights(path), config), str(path)


class PretrainedMixin:
    """``num_parameters``, ``from_pretrained`` and ``save_pretrained``, shared by
    :class:`~maskformer.MaskFormer` and :class:`~maskformer.baseline.PerPixelBaseline`. A class using it
    sets ``architecture`` to the value of ``MaskFormerConfig.architecture`` it implements."""

    architecture: str = ""

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, revision: str | None = None):
        """Load our own checkpoint directory, a Hugging Face MaskFormer directory, or a Hub id
        (see :func:`read_pretrained`), in eval mode, with no missing or unexpected key.

        The checkpoint must hold this class's architecture; :func:`maskformer.hub.from_pretrained`
        loads whichever it holds.
        """
        config, weights, source = read_pretrained(name_or_path, revision)
        if config.architecture != cls.architecture:
            raise ValueError(f"{name_or_path} holds architecture {config.architecture!r}, not a {cls.__name__} "
                             f"({cls.architecture!r}); load it with maskformer.hub.from_pretrained")
        model = cls(config)
        load_converted(model, weights, source=source)
        return model.eval()

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` to ``directory``."""
        save_pretrained(self, directory)
