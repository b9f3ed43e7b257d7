"""The many-class probe: Shapes with ``class_cue="marker"``, where only a marker inside a segment tells its class."""

import numpy as np
import pytest
import torch

from maskformer.data.build import build_split
from maskformer.data.shapes import Shapes
from maskformer.recipes import DataConfig, load_config


@pytest.fixture(scope="module")
def probe():
    return Shapes(num_samples=40, image_size=64, num_classes=19, seed=3, class_cue="marker")


def test_every_segment_holds_its_class_marker_and_nothing_else_tells_the_class(probe):
    body_hues = {c: [] for c in range(1, probe.num_classes)}
    for index in range(len(probe)):
        image, semantic, instance, id_to_class = probe.draw(index)
        rgb = image.permute(1, 2, 0).numpy().astype(int)
        white = (rgb >= 254).all(-1)
        assert not (white & (semantic.numpy() == 0)).any()  # markers never spill onto the background
        for shape_id, cls in id_to_class.items():
            if shape_id == 0:
                continue
            inside = instance.numpy() == shape_id
            assert (semantic.numpy()[inside] == cls).all()
            marker = np.array(probe.palette[cls])
            exact = (np.abs(rgb[inside] - marker) <= 1).all(-1).sum()
            assert exact >= 9, (index, shape_id, exact)  # a marker disc of about 20 px, in the class's hue
            assert (white & inside).sum() >= 9  # inside its white ring
            body = rgb[inside & ~white][np.abs(rgb[inside & ~white] - marker).sum(-1) > 30]
            body_hues[cls].append(body.mean(0))
    # body colours are drawn independently of the class: the mean body colour of every class is near grey-ish
    # average, not its marker hue (with many shapes per class the means converge)
    means = np.array([np.mean(v, 0) for v in body_hues.values() if len(v) >= 3])
    assert means.std(0).max() < 40


def test_shapes_do_not_overlap_so_no_marker_is_hidden(probe):
    for index in range(len(probe)):
        _, _, instance, id_to_class = probe.draw(index)
        assert set(np.unique(instance.numpy()).tolist()) == set(id_to_class)  # every drawn shape is visible


def test_marker_probe_is_seeded_and_leaves_the_default_data_alone():
    a = Shapes(num_samples=3, image_size=48, num_classes=7, seed=1, class_cue="marker")
    b = Shapes(num_samples=3, image_size=48, num_classes=7, seed=1, class_cue="marker")
    plain = Shapes(num_samples=3, image_size=48, num_classes=7, seed=1)
    assert torch.equal(a.draw(2)[0], b.draw(2)[0])
    assert not torch.equal(a.draw(2)[0], plain.draw(2)[0])
    assert a.class_names[1] == "red marker" and plain.class_names[1] == "red square"


def test_class_cue_is_a_config_field_and_bad_values_are_one_line():
    cfg = load_config("shapes/maskformer_tiny", ["data.class_cue=marker", "data.num_train=4"])
    dataset = build_split(cfg.data, "train", seed=0)
    assert dataset.class_cue == "marker" and len(dataset) == 4
    with pytest.raises(ValueError, match="class_cue"):
        DataConfig(dataset="shapes", class_cue="size")
    with pytest.raises(ValueError, match="class_cue='size'"):
        Shapes(class_cue="size")
