"""The augmentation against the original's arithmetic: detectron2's `ColorAugSSDTransform` (numpy and
OpenCV) and `ResizeTransform` (labels resized as float64 with `F.interpolate`).

The expected pixel values below were printed by the original's steps (`convert` and `cv2.cvtColor`)
with OpenCV 4.5.5 and 4.14, which agree; the image is 32 pixels wide, the width OpenCV's AVX2 code
handles in one block (see `ColorJitterSSD`'s docstring for narrower rows).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from maskformer.data.transforms import (
    ColorJitterSSD,
    ResizeShortestEdge,
    hsv_to_rgb_opencv,
    resize_labels,
    rgb_to_hsv_opencv,
)

PIXELS = [[200, 30, 30], [20, 100, 220], [90, 90, 90], [10, 240, 120],
          [255, 255, 0], [1, 2, 3], [128, 64, 250], [37, 180, 99]]


def image_of(pixels, repeat=4) -> tv_tensors.Image:
    """RGB triples -> uint8 Image `[3, 1, len * repeat]` (the row repeated to 32 pixels)."""
    return tv_tensors.Image(torch.tensor(pixels, dtype=torch.uint8).T[:, None, :].repeat(1, 1, repeat))


def pixels_of(image) -> list[list[int]]:
    return image[:, 0, : len(PIXELS)].T.tolist()


def jitter(image, brightness=None, contrast_first=True, contrast=None, saturation=None, hue=None):
    params = {"brightness": brightness, "contrast_first": contrast_first, "contrast": contrast,
              "saturation": saturation, "hue": hue}
    return ColorJitterSSD().transform(image, params)


def original_convert(values, alpha=1, beta=0):
    """The original's `convert`, verbatim in behaviour: float32 arithmetic, clip, `astype(np.uint8)`."""
    img = np.asarray(values, dtype=np.uint8).astype(np.float32) * alpha + beta
    return np.clip(img, 0, 255).astype(np.uint8).tolist()


def test_brightness_clips_and_truncates_like_the_original():
    values = [[0, 100, 250, 3]] * 3
    image = tv_tensors.Image(torch.tensor(values, dtype=torch.uint8)[:, None, :])  # [3, 1, 4]
    # 0 + 10.7 -> 10, 100 + 10.7 -> 110 (rounding would give 111), 260.7 -> 255, 13.7 -> 13
    assert jitter(image, brightness=10.7)[0, 0].tolist() == [10, 110, 255, 13] == original_convert(values[0], beta=10.7)
    # 100 - 20.5 = 79.5 -> 79 (rounding: 80), negatives clip to 0
    assert jitter(image, brightness=-20.5)[0, 0].tolist() == [0, 79, 229, 0] == original_convert(values[0], beta=-20.5)


def test_contrast_clips_and_truncates_like_the_original():
    values = [[0, 1, 100, 200, 255, 7]] * 3
    image = tv_tensors.Image(torch.tensor(values, dtype=torch.uint8)[:, None, :])
    # 1.3 is 1.29999995 in float32: 100 * 1.3 -> 129.999995, which float32 stores as 130.0 exactly
    assert jitter(image, contrast=1.3)[0, 0].tolist() == [0, 1, 130, 255, 255, 9] == original_convert(values[0], 1.3)
    # 0.7 -> 0.699999988: 1 * 0.7 -> 0, 255 * 0.7 = 178.5 -> 178 (rounding: 179), 7 * 0.7 = 4.9 -> 4
    assert jitter(image, contrast=0.7)[0, 0].tolist() == [0, 0, 70, 140, 178, 4] == original_convert(values[0], 0.7)


def test_random_values_truncate_exactly_as_numpy():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, size=(3, 16, 32), dtype=np.uint8)
    image = tv_tensors.Image(torch.from_numpy(values))
    for beta in rng.uniform(-32, 32, size=5):
        expected = np.clip(values.astype(np.float32) + beta, 0, 255).astype(np.uint8)
        assert np.array_equal(jitter(image, brightness=float(beta)).numpy(), expected)
    for alpha in rng.uniform(0.5, 1.5, size=5):
        expected = np.clip(values.astype(np.float32) * alpha, 0, 255).astype(np.uint8)
        assert np.array_equal(jitter(image, contrast=float(alpha)).numpy(), expected)


def test_rgb_to_hsv_is_opencvs_8_bit_hsv():
    h, s, v = rgb_to_hsv_opencv(image_of(PIXELS))
    hsv = torch.stack([h, s, v], -1)[0, : len(PIXELS)].tolist()
    # cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV): H = hue / 2 (0..179), S = round(255 * (max - min) / max), V = max
    assert hsv == [[0, 217, 200], [108, 232, 220], [0, 0, 90], [74, 244, 240],
                   [30, 255, 255], [105, 170, 3], [130, 190, 250], [73, 203, 180]]
    # (200, 30, 30): S = 255 * 170 / 200 = 216.75 -> 217. (20, 100, 220), blue the largest:
    # hue = 240 + 60 * (20 - 100) / 200 = 216 degrees, stored as 108
    assert hsv[0][1] == round(255 * 170 / 200) and hsv[1][0] == (240 + 60 * (20 - 100) / 200) / 2


@pytest.mark.parametrize("factor, expected", [
    (1.4, [[200, 0, 0], [0, 87, 220], [90, 90, 90], [0, 240, 112],
           [255, 255, 0], [0, 1, 3], [83, 0, 250], [0, 180, 78]]),
    (0.6, [[200, 98, 98], [100, 148, 220], [90, 90, 90], [102, 240, 166],
           [255, 255, 101], [1, 2, 3], [175, 138, 250], [94, 180, 131]]),
])
def test_saturation_step_equals_the_original(factor, expected):
    assert pixels_of(jitter(image_of(PIXELS), saturation=factor)) == expected


@pytest.mark.parametrize("delta, expected", [
    (12, [[200, 97, 29], [19, 19, 220], [90, 90, 90], [10, 240, 209],
          [152, 255, 0], [1, 1, 3], [200, 63, 250], [36, 180, 156]]),
    (-18, [[200, 29, 131], [19, 219, 220], [90, 90, 90], [40, 240, 10],
           [255, 102, 0], [1, 3, 2], [63, 113, 250], [60, 180, 36]]),
])
def test_hue_step_equals_the_original(delta, expected):
    assert pixels_of(jitter(image_of(PIXELS), hue=delta)) == expected


def test_hsv_round_trip_truncates_as_opencv():
    # H = 0, S = 217, V = 200 -> red 200, green and blue 200 * (1 - 217 / 255) = 29.80, truncated to 29:
    # the original's (200, 30, 30) comes back as (200, 29, 29)
    h, s, v = (torch.tensor([[x]], dtype=torch.uint8) for x in (0, 217, 200))
    assert hsv_to_rgb_opencv(h, s, v)[:, 0, 0].tolist() == [200, 29, 29]
    assert 200 * (1 - 217 / 255) == pytest.approx(29.80, abs=0.01)


@pytest.mark.parametrize("params, expected", [
    (dict(brightness=-7.3, contrast_first=True, contrast=1.21, saturation=0.8, hue=5),
     [[232, 95, 68], [61, 107, 255], [99, 99, 99], [51, 255, 194],
      [220, 255, 49], [0, 0, 0], [194, 103, 255], [70, 208, 152]]),
    (dict(brightness=12.9, contrast_first=False, contrast=0.77, saturation=1.3, hue=-9),
     [[163, 0, 48], [0, 124, 178], [78, 78, 78], [0, 194, 32],
      [196, 137, 0], [9, 10, 11], [28, 16, 196], [4, 147, 23]]),
])
def test_all_steps_in_both_orders_equal_the_original(params, expected):
    assert pixels_of(jitter(image_of(PIXELS), **params)) == expected


# ----------------------------------------------------------------------------- label resizing


def detectron2_resize_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """What `ResizeTransform.apply_segmentation` does with the float64 map of the semantic mapper."""
    H, W = labels.shape
    x = labels.double().view(H, W, 1, 1).permute(2, 3, 0, 1)  # hw -> nchw, as detectron2
    return F.interpolate(x, size, mode="nearest")[0, 0].long()


@pytest.mark.parametrize("n_in, n_out, differing_rows", [(512, 614, [307]), (512, 460, [115, 230, 345])])
def test_label_resize_picks_the_rows_of_the_original(n_in, n_out, differing_rows):
    labels = torch.arange(n_in)[:, None].expand(n_in, 3)  # label = its row
    ours = resize_labels(labels, (n_out, 3))[:, 0]
    # the source row of output row i is floor(i * n_in / n_out); at these sizes double precision finds it
    # exactly: 307 * 512 / 614 = 256, 115 * 512 / 460 = 128, 230 -> 256, 345 -> 384
    expected = torch.arange(n_out) * n_in // n_out
    assert torch.equal(ours, expected)
    assert torch.equal(ours, detectron2_resize_labels(labels, (n_out, 3))[:, 0])
    # torchvision resizes int64 masks as float32 and lands one row short exactly there
    float32_rows = TF.resize(tv_tensors.Mask(labels), [n_out, 3])[:, 0]
    assert torch.nonzero(float32_rows != expected).flatten().tolist() == differing_rows
    assert (expected - float32_rows)[differing_rows].tolist() == [1] * len(differing_rows)


def test_resize_shortest_edge_resizes_labels_as_the_original_and_images_as_before():
    torch.manual_seed(0)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 512, 700), dtype=torch.uint8))
    labels = torch.arange(512)[:, None] * 1000 + torch.arange(700)  # row * 1000 + column
    resized_image, resized_labels = ResizeShortestEdge(614)(image, tv_tensors.Mask(labels))
    assert resized_labels.shape == (614, 839) and resized_labels.dtype == torch.int64
    assert torch.equal(resized_labels, detectron2_resize_labels(labels, (614, 839)))
    assert torch.equal(resized_labels[:, 0] // 1000, torch.arange(614) * 512 // 614)  # row 307 reads row 256
    assert torch.equal(resized_image, TF.resize(image, [614, 839], antialias=True))


def test_resize_labels_keeps_dtype_leading_dims_and_large_ids():
    labels = torch.tensor([[0, 70000], [65535, 2**40]])[None].repeat(2, 1, 1)  # [2, 2, 2] int64
    out = resize_labels(labels, (4, 4))
    assert out.shape == (2, 4, 4) and out.dtype == torch.int64
    assert set(out.unique().tolist()) == {0, 70000, 65535, 2**40}
