"""Reading images and label PNGs, with errors that name the file and say what to do.

Every error about a sample's file (missing, unreadable, wrong mode, wrong size, label values out
of range) is a :class:`DataError`, whose message is one line that names the file: a training loop
can catch it and stop with that line. A missing file is a :class:`MissingFileError`, which is
also a `FileNotFoundError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = ["DataError", "MissingFileError", "read_image", "read_label", "image_from_pil", "label_from_pil"]


class DataError(ValueError):
    """A sample's file cannot be used as it is; the message is one line naming the file and what to do."""


class MissingFileError(DataError, FileNotFoundError):
    """A sample's file does not exist (a `DataError` that is also a `FileNotFoundError`)."""


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()  # decode now, so truncated files fail here and not deep inside a DataLoader
    except FileNotFoundError:
        raise MissingFileError(f"maskformer/data: file {path} does not exist; check the dataset folder") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        reason = " ".join(str(error).split())  # PIL's reason on the same line
        raise DataError(
            f"maskformer/data: cannot read {path} ({reason}); the file is truncated or not an image: "
            f"re-download or re-export it, or delete it together with its label"
        ) from None
    return image


def image_from_pil(image: Image.Image, name: str = "image") -> Tensor:
    """A PIL image -> uint8 RGB `[3, H, W]`.

    Grayscale and palette images are expanded to RGB; an alpha channel is dropped; 16-bit
    grayscale is scaled to 8 bits (divided by 257). Other modes (e.g. 32-bit float) are refused.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image).astype(np.float64)
        if array.max() > 65535 or array.min() < 0:
            raise DataError(f"maskformer/data: {name} is a 32-bit image with values {array.min():.0f}..{array.max():.0f}; "
                             f"convert it to 8-bit RGB")
        array = np.round(array / 257).astype(np.uint8)
        return torch.from_numpy(array)[None].expand(3, -1, -1).contiguous()
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"):
        raise DataError(f"maskformer/data: {name} has PIL mode {image.mode!r}, which is not an 8-bit or 16-bit "
                         f"picture; convert it to 8-bit RGB (e.g. PNG or JPEG)")
    array = np.asarray(image.convert("RGB"))  # [H, W, 3] uint8
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def label_from_pil(label: Image.Image, name: str = "label") -> Tensor:
    """A PIL label image -> int64 `[H, W]` of class ids.

    8-bit grayscale ("L"), palette ("P", the indices are the classes, as in VOC) and 16-bit
    ("I;16", "I") PNGs are read as ids, every value as stored (256 and above included).
    Colour-coded RGB labels are refused: convert colours to ids.
    """
    if label.mode in ("L", "P", "I;16", "I;16B", "I;16L", "I", "1"):
        return torch.from_numpy(np.asarray(label).astype(np.int64))
    if label.mode in ("RGB", "RGBA"):
        array = np.asarray(label)
        if (array[..., 0] == array[..., 1]).all() and (array[..., 0] == array[..., 2]).all():
            return torch.from_numpy(array[..., 0].astype(np.int64))  # gray stored as RGB
    raise DataError(f"maskformer/data: label {name} has PIL mode {label.mode!r} with colours; label PNGs must hold "
                     f"class ids (mode 'L', 'P' or 'I;16'): map each colour to its class id and save as 8-bit grayscale")


def read_image(path: str | Path) -> Tensor:
    """Read an image file -> uint8 RGB `[3, H, W]` (see :func:`image_from_pil`)."""
    return image_from_pil(_open(Path(path)), str(path))


def read_label(path: str | Path) -> Tensor:
    """Read a label PNG -> int64 `[H, W]` (see :func:`label_from_pil`)."""
    return label_from_pil(_open(Path(path)), str(path))
