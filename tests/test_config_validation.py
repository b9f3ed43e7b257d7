"""Configs are checked when they are built: a wrong type or an impossible value raises one line that
names the field, the value and what is allowed, before any model or dataset is built."""

import json
from dataclasses import dataclass

import pytest

from maskformer.config import MaskFormerConfig, check_types
from maskformer.recipes import CONFIG_DIR, DATASET_NAMES, DataConfig, SolverConfig, TrainConfig, load_config

SHAPES = "shapes/maskformer_tiny"

# (overrides, field named, value as the message shows it, what is allowed)
BAD = [
    # wrong types
    (["solver.batch_size=abc"], "solver.batch_size", "'abc'", "expected int"),
    (["model.num_queries=abc"], "model.num_queries", "'abc'", "expected int"),
    (["solver.max_iters=5.5"], "solver.max_iters", "5.5", "expected int"),
    (["solver.lr=fast"], "solver.lr", "'fast'", "expected float"),
    (["solver.batch_size=true"], "solver.batch_size", "True", "expected int"),  # a bool is not a count
    (["solver.clip_grad_norm=[1]"], "solver.clip_grad_norm", "[1]", "expected float or null"),
    (["data.test_aug_short_edges=abc"], "data.test_aug_short_edges", "'abc'", "expected a list of int"),
    (["model.pixel_mean=[1, 2]"], "model.pixel_mean", "[1, 2]", "expected a list of 3 float"),
    (["model.deep_supervision=1"], "model.deep_supervision", "1", "expected bool"),
    (["data.root=2016"], "data.root", "2016", "expected str or null (quote it"),
    (["model.id2label=[a, b]"], "model.id2label", "['a', 'b']", "expected a mapping of int to str or null"),
    (["eval_period=often"], "eval_period", "'often'", "expected int"),
    (["data=abc"], "data", "'abc'", "expected a mapping of DataConfig fields"),
    # unknown names list the known ones
    (["model.foo=1"], "unknown model fields ['foo']", "", "num_queries"),
    (["model.preset=null", "model.foo=1"], "unknown model fields ['foo']", "", "num_queries"),
    (["solver.foo=1"], "unknown solver fields ['foo']", "", "batch_size"),
    (["foo=1"], "unknown top-level fields ['foo']", "", "eval_period"),
    (["model.preset=swin_huge"], "model.preset", "'swin_huge'", "must be one of"),
    # impossible values: solver
    (["solver.batch_size=0"], "solver.batch_size", "0", "must be >= 1"),
    (["solver.batch_size=-4"], "solver.batch_size", "-4", "must be >= 1"),
    (["solver.max_iters=0"], "solver.max_iters", "0", "must be >= 1"),
    (["solver.lr=0"], "solver.lr", "0.0", "must be > 0"),
    (["solver.lr=-1e-4"], "solver.lr", "-0.0001", "must be > 0"),
    (["solver.grad_accum_steps=0"], "solver.grad_accum_steps", "0", "must be >= 1"),
    (["solver.grad_accum_steps=3"], "solver.batch_size", "16", "divisible by solver.grad_accum_steps=3"),
    (["solver.warmup_iters=-1"], "solver.warmup_iters", "-1", "must be >= 0"),
    (["solver.warmup_factor=0"], "solver.warmup_factor", "0.0", "must be in (0, 1]"),
    (["solver.warmup_factor=1.5"], "solver.warmup_factor", "1.5", "must be in (0, 1]"),
    (["solver.weight_decay=-0.1"], "solver.weight_decay", "-0.1", "must be >= 0"),
    (["solver.weight_decay_norm=-1"], "solver.weight_decay_norm", "-1.0", "must be >= 0"),
    (["solver.poly_power=-1"], "solver.poly_power", "-1.0", "must be >= 0"),
    (["solver.clip_grad_norm=0"], "solver.clip_grad_norm", "0.0", "must be > 0, or null"),
    (["solver.precision=fp16"], "solver.precision", "'fp16'", "must be one of ('auto', 'fp32', 'bf16')"),
    # data
    (["data.crop_size=0"], "data.crop_size", "0", "must be >= 1"),
    (["data.num_workers=-1"], "data.num_workers", "-1", "must be >= 0"),
    (["data.num_train=0"], "data.num_train", "0", "must be >= 1"),
    (["data.num_val=0"], "data.num_val", "0", "must be >= 1"),
    (["data.num_classes=0"], "data.num_classes", "0", "must be >= 2"),
    (["data.dataset=coco"], "data.dataset", "'coco'", f"must be one of {DATASET_NAMES}"),
    (["data.dataset=folder"], "data.dataset", "'folder'", "--images/--labels/--classes"),
    (["data.dataset=folder", "data.images=i", "data.labels=l"], "data.dataset", "'folder'", "missing data.classes"),
    (["data.dataset=folder", "data.images=i", "data.labels=l", "data.classes=a,b", "data.val_images=v"],
     "data.val_images", "'v'", "data.val_labels"),
    (["data.dataset=hf"], "data.hf_name", "None", "must name the dataset"),
    (["data.images=photos"], "data.images", "'photos'", "only read with data.dataset=folder"),
    (["data.val_fraction=1"], "data.val_fraction", "1.0", "must be in (0, 1)"),
    (["data.ignore_index=-1"], "data.ignore_index", "-1", "must be in 0..65535"),
    # the run
    (["log_period=0"], "log_period", "0", "must be >= 1"),
    (["eval_period=-1"], "eval_period", "-1", "must be >= 0"),
    (["checkpoint_period=-5"], "checkpoint_period", "-5", "must be >= 0"),
    (["keep_checkpoints=0"], "keep_checkpoints", "0", "must be >= 1"),
    (["device=gpu"], "device", "'gpu'", "must be 'auto' or a torch device"),
    # model
    (["model.num_classes=0"], "model.num_classes", "0", "must be >= 1"),
    (["model.num_queries=0"], "model.num_queries", "0", "must be >= 1"),
    (["model.dec_layers=0"], "model.dec_layers", "0", "must be >= 1"),
    (["model.hidden_dim=0"], "model.hidden_dim", "0", "must be >= 1"),
    (["model.num_heads=3"], "model.num_heads", "3", "divide model.hidden_dim=64"),
    (["model.dropout=1"], "model.dropout", "1.0", "must be in [0, 1)"),
    (["model.no_object_weight=-0.1"], "model.no_object_weight", "-0.1", "must be >= 0"),
    (["model.fpn_dim=48"], "model.fpn_dim", "48", "multiple of 32"),
    (["model.resnet_depths=[1, 1, 1]"], "model.resnet_depths", "(1, 1, 1)", "must be 4 block counts"),
    (["model.architecture=detr"], "model.architecture", "'detr'", "must be one of"),
]


@pytest.mark.parametrize("overrides, field, shown, allowed", BAD, ids=[" ".join(case[0]) for case in BAD])
def test_bad_override_names_field_value_and_what_is_allowed(overrides, field, shown, allowed):
    with pytest.raises(ValueError) as info:
        load_config(SHAPES, overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(CONFIG_DIR / f"{SHAPES}.yaml"))  # load_config names the file
    assert (f"{field}={shown}" if shown else field) in message, message
    assert allowed in message, message


def test_good_values_are_converted():
    cfg = load_config(SHAPES, ["solver.lr=1", "solver.clip_grad_norm=null", "data.test_aug_short_edges=[64, 96]",
                               "model.pixel_std=[1, 1, 1]", "solver.max_iters=1e3", "model.num_points=null",
                               "model.id2label={0: a, 1: b}", "solver.grad_accum_steps=4", "data.root=null"])
    assert cfg.solver.lr == 1.0 and isinstance(cfg.solver.lr, float)  # an int for a float field
    assert cfg.solver.clip_grad_norm is None and cfg.model.num_points is None  # null for optional fields
    assert cfg.data.test_aug_short_edges == (64, 96)  # a list for a tuple field
    assert cfg.model.pixel_std == (1.0, 1.0, 1.0) and all(isinstance(v, float) for v in cfg.model.pixel_std)
    assert cfg.solver.max_iters == 1000 and isinstance(cfg.solver.max_iters, int)  # 1e3 is a whole number
    assert cfg.model.id2label == {0: "a", 1: "b"}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_own_data_fields():
    folder = load_config(SHAPES, ["data.dataset=folder", "data.images=my/images", "data.labels=my/labels",
                                  "data.classes=road,car", "data.reduce_labels=true", "data.val_fraction=0.2"])
    assert (folder.data.images, folder.data.classes, folder.data.reduce_labels) == ("my/images", "road,car", True)
    hf = load_config(SHAPES, ["data.dataset=hf", "data.hf_name=scene_parse_150", "data.hf_val_split=null"])
    assert (hf.data.hf_name, hf.data.hf_val_split, hf.data.label_column) == ("scene_parse_150", None, "annotation")


SHIPPED = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if not p.name.startswith("Base-"))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(CONFIG_DIR)) for p in SHIPPED])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.solver.precision in ("auto", "fp32", "bf16")


def test_python_construction_is_checked_too():
    with pytest.raises(ValueError, match=r"^solver\.batch_size=0: must be >= 1$"):
        SolverConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"^data\.crop_size='512': expected int$"):
        DataConfig(crop_size="512")
    with pytest.raises(ValueError, match=r"^model\.dropout=1\.5: must be in \[0, 1\)$"):
        MaskFormerConfig.tiny(dropout=1.5)
    cfg = TrainConfig(model=MaskFormerConfig.tiny(), data=DataConfig(dataset="shapes", test_aug_short_edges=[32]),
                      solver=SolverConfig(lr=1, batch_size=4, grad_accum_steps=2))
    assert cfg.data.test_aug_short_edges == (32,) and cfg.solver.lr == 1.0


def test_check_types_contract():
    @dataclass
    class Example:
        count: int = 1
        scale: float = 1.0
        sizes: tuple[int, ...] = ()
        names: dict[int, str] | None = None

    assert check_types(Example, {"scale": 2, "sizes": [1, 2], "names": {"0": "a"}}, "ex") == \
        {"scale": 2.0, "sizes": (1, 2), "names": {0: "a"}}  # JSON's string keys become ints
    with pytest.raises(ValueError, match=r"^ex\.count=False: expected int$"):
        check_types(Example, {"count": False}, "ex")
    with pytest.raises(ValueError, match=r"^ex\.sizes=\[1, 'x'\]: expected a list of int$"):
        check_types(Example, {"sizes": [1, "x"]}, "ex")
    with pytest.raises(ValueError, match=r"^unknown ex fields \['cnt'\]; known: \['count', 'names', 'scale', "):
        check_types(Example, {"cnt": 1}, "ex")


def test_from_dict_names_the_field_of_a_bad_config_json(tmp_path):
    saved = {**MaskFormerConfig.tiny(num_classes=3, id2label={0: "a", 1: "b", 2: "c"}).to_dict(), "num_queries": "20"}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"^model\.num_queries='20': expected int$"):
        MaskFormerConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    saved["num_queries"] = 20  # string keys of id2label, as JSON writes them, are fine
    assert MaskFormerConfig.from_dict(json.loads(json.dumps(saved))).id2label == {0: "a", 1: "b", 2: "c"}
