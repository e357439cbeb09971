"""Pretraining stage: torchvision-named narrow ResNets, the cached weights file, loading it through weights_path."""

from __future__ import annotations

import pytest
import torch
import torchvision

from fgvc_mix import pretrain
from fgvc_mix.data.synthetic_drawing import SHAPES, Canvas
from fgvc_mix.data.synthetic_pretrain import OBJECT_CLASSES, PART_CLASSES, SILHOUETTES, SyntheticObjects
from fgvc_mix.models import build_classifier
from fgvc_mix.models.backbones import NarrowResNet
from fgvc_mix.training.config import compose_config

TINY_PRETRAIN = [
    "data.train_size=36",
    "data.test_size=36",
    "data.image_size=32",
    "optim.epochs=1",
    "optim.batch_size=18",
    "model.width=4",
    "num_workers=0",
]


@pytest.fixture
def tiny_pretrain(tmp_path, monkeypatch):
    monkeypatch.setenv("FGVC_MIX_HOME", str(tmp_path / "home"))
    return lambda *overrides: compose_config([*TINY_PRETRAIN, *overrides], tmp_path / "run", config_name="pretrain")


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_narrow_resnet_at_width_64_has_torchvision_keys_and_shapes(name):
    ours = NarrowResNet(name, 64).state_dict()
    theirs = getattr(torchvision.models, name)().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_pretraining_writes_the_cache_and_a_second_run_reuses_it(tiny_pretrain, tmp_path, monkeypatch):
    path = pretrain.pretrained_weights(tiny_pretrain())
    assert path.is_file() and path.parent == tmp_path / "home" / "pretrained"
    assert pretrain.pretraining_report(path)["chance"] == pytest.approx(1 / 36)  # the default scene: objects
    assert not any(key.startswith("fc.") for key in torch.load(path, weights_only=True))

    def no_training(cfg):
        raise AssertionError("the cached weights should have been reused")

    monkeypatch.setattr(pretrain, "train_backbone", no_training)
    assert pretrain.pretrained_weights(tiny_pretrain("num_workers=2", "device=cpu")) == path  # not in the key
    assert pretrain.weights_file(tiny_pretrain("optim.lr=0.01")) != path  # other settings, other weights


def test_weights_path_loads_the_pretrained_backbone(tiny_pretrain):
    path = pretrain.pretrained_weights(tiny_pretrain())
    state = torch.load(path, weights_only=True)
    model = build_classifier("resnet18", num_classes=3, weights_path=str(path), backbone_options={"width": 4})
    assert torch.equal(model.backbone.body[0].weight, state["conv1.weight"])  # body[0] is torchvision's conv1
    assert torch.equal(model.backbone.last_stage[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert model.pretrained_backbone  # so the backbone trains at optim.backbone_lr_scale
    with pytest.raises(ValueError, match=r"model\.backbone_options\.width"):
        build_classifier("resnet18", num_classes=3, weights_path=str(path), backbone_options={"width": 8})


def test_a_narrow_resnet_has_no_imagenet_weights():
    with pytest.raises(ValueError, match=r"width=16.*model\.pretrained=false"):
        build_classifier("resnet18", num_classes=3, pretrained=True, backbone_options={"width": 16})


def _drawn_sizes(monkeypatch, dataset: SyntheticObjects, index: int) -> tuple[float, float]:
    """(object part_size, texture part_size) that ``dataset[index]`` passes to the canvas."""
    sizes = {}
    shape, paint = Canvas.shape, Canvas.paint_texture

    def spy_shape(self, rng, shape_id, cx, cy, angle, du, dv, part_size):
        sizes["shape"] = part_size
        return shape(self, rng, shape_id, cx, cy, angle, du, dv, part_size)

    def spy_paint(self, rng, image, region, texture_id, under, angle, part_size):
        sizes["texture"] = part_size
        return paint(self, rng, image, region, texture_id, under, angle, part_size)

    monkeypatch.setattr(Canvas, "shape", spy_shape)
    monkeypatch.setattr(Canvas, "paint_texture", spy_paint)
    dataset[index]
    monkeypatch.undo()
    return sizes["shape"], sizes["texture"]


def test_content_size_keeps_object_and_texture_sizes_in_pixels(monkeypatch):
    """Drawn at 64 px with content_size=128, an object is as many pixels across as the same object at 128 px."""
    at_128 = _drawn_sizes(monkeypatch, SyntheticObjects("train", 4, 128, radius=(0.08, 0.2)), 3)
    at_64 = _drawn_sizes(monkeypatch, SyntheticObjects("train", 4, 64, radius=(0.08, 0.2), content_size=128), 3)
    plain_64 = _drawn_sizes(monkeypatch, SyntheticObjects("train", 4, 64, radius=(0.08, 0.2)), 3)
    assert at_64 == pytest.approx(at_128)
    assert plain_64 == pytest.approx((at_128[0] / 2, at_128[1] / 2))  # without it, sizes follow the image


def test_a_reversed_radius_range_is_refused():
    with pytest.raises(ValueError, match=r"radius"):
        SyntheticObjects("train", 4, 64, radius=(0.3, 0.1))


PARTS = {"scene": "objects_with_parts", "radius": (0.30, 0.45)}


def test_default_scene_draws_todays_images():
    """Sums of images drawn before the scene option existed: the default cache's weights still describe them."""
    images = SyntheticObjects("train", 50, 128)
    assert images.targets[:3] == [28, 20, 13]
    sums = [float(images[i][0].double().sum()) for i in range(3)]
    assert sums == pytest.approx([25304.619302576117, 24552.02932763734, 24232.91497324685], rel=1e-6)
    small = SyntheticObjects("test", 30, 64, radius=(0.08, 0.2), content_size=128)
    assert float(small[1][0].double().sum()) == pytest.approx(5626.7134334549155, rel=1e-6)


def test_the_objects_scene_keeps_the_cache_key_it_had_before_the_option(tiny_pretrain):
    objects = tiny_pretrain("data.scene=objects")
    before = tiny_pretrain("data.scene=objects")
    del before.data.scene  # a config written before the option existed
    assert pretrain.weights_file(objects) == pretrain.weights_file(before)
    assert pretrain.weights_file(tiny_pretrain("data.scene=objects_with_parts")) != pretrain.weights_file(before)
    del before.data.parts_radius  # nor the parts' radius option (null: data.radius)
    assert pretrain.weights_file(objects) == pretrain.weights_file(before)
    assert pretrain.weights_file(tiny_pretrain("data.parts_radius=[0.30,0.45]")) != pretrain.weights_file(before)


def test_parts_scene_puts_one_mark_on_the_object_and_distractors_off_it():
    dataset = SyntheticObjects("train", 24, 128, **PARTS)
    samples = [dataset.render(i) for i in range(24)]
    for sample in samples:
        assert sample.mark_mask.any() and not (sample.mark_mask & ~sample.object_mask).any()
        assert not (sample.distractor_mask & sample.object_mask).any()
    assert sum(bool(s.distractor_mask.any()) for s in samples) >= 20
    # The birds' head-mark size: radius ~12 px at 128 (shape areas 1.5-3.1 r^2).
    assert 150 < sorted(int(s.mark_mask.sum()) for s in samples)[12] < 500


def test_parts_scene_class_is_the_silhouette_and_the_mark(monkeypatch):
    """The first shape drawn is the label's silhouette, every mark tried has the label's mark shape."""
    dataset = SyntheticObjects("val", 48, 64, **PARTS)
    assert len(dataset.classes) == len(set(dataset.targets)) == len(SILHOUETTES) * len(SHAPES) == 24
    shapes, drawing = [], []
    shape, distractors = Canvas.shape, Canvas.distractors

    def spy_shape(self, rng, shape_id, *args):
        if not drawing:  # not a distractor
            shapes.append(SHAPES[shape_id])
        return shape(self, rng, shape_id, *args)

    def spy_distractors(self, *args):
        drawing.append(True)
        return distractors(self, *args)

    monkeypatch.setattr(Canvas, "shape", spy_shape)
    monkeypatch.setattr(Canvas, "distractors", spy_distractors)
    for index in range(0, 48, 5):
        shapes.clear(), drawing.clear()
        dataset.render(index)
        silhouette, mark = dataset.classes[dataset.targets[index]].removesuffix("-mark").split("/")
        assert shapes[0] == silhouette and set(shapes[1:]) == {mark}


def test_parts_scene_is_deterministic_per_seed_split_and_index():
    first, again = SyntheticObjects("test", 12, 64, seed=3, **PARTS), SyntheticObjects("test", 12, 64, seed=3, **PARTS)
    assert all(torch.equal(first[i][0], again[i][0]) for i in range(12))
    other_split, other_seed = (
        SyntheticObjects("val", 12, 64, seed=3, **PARTS),
        SyntheticObjects("test", 12, 64, **PARTS),
    )
    assert not torch.equal(first[5][0], other_split[5][0]) and not torch.equal(first[5][0], other_seed[5][0])


def test_pretraining_on_the_parts_scene_has_its_24_classes(tiny_pretrain):
    path = pretrain.pretrained_weights(tiny_pretrain("data.scene=objects_with_parts", "data.radius=[0.30,0.45]"))
    assert pretrain.pretraining_report(path)["chance"] == pytest.approx(1 / 24)


def test_an_unknown_scene_is_refused():
    with pytest.raises(ValueError, match=r"data\.scene"):
        SyntheticObjects("train", 4, 64, scene="birds")


MIXED = {"scene": "mixed", "radius": (0.10, 0.30), "parts_radius": (0.30, 0.45)}


def test_mixed_scene_alternates_the_two_scenes_with_their_own_classes():
    dataset = SyntheticObjects("train", 240, 64, **MIXED)
    assert dataset.classes == [*OBJECT_CLASSES, *PART_CLASSES] and len(dataset.classes) == 60
    objects, parts = dataset.targets[0::2], dataset.targets[1::2]
    assert sorted(set(objects)) == list(range(36)) and sorted(set(parts)) == list(range(36, 60))
    assert max(map(objects.count, set(objects))) - min(map(objects.count, set(objects))) <= 1  # balanced per scene
    assert max(map(parts.count, set(parts))) - min(map(parts.count, set(parts))) <= 1
    samples = [dataset.render(i) for i in range(8)]
    assert [bool(s.mark_mask.any()) for s in samples] == [False, True] * 4  # marks only in the parts scene


def test_mixed_scene_draws_each_scene_at_its_own_radius():
    """Objects images do not depend on parts_radius; parts images are drawn larger with the larger range."""
    wide, same = (
        SyntheticObjects("test", 16, 128, **MIXED),
        SyntheticObjects("test", 16, 128, **{**MIXED, "parts_radius": None}),
    )
    assert all(torch.equal(wide[i][0], same[i][0]) for i in range(0, 16, 2))
    parts = range(1, 16, 2)
    assert _object_area(wide, parts) > 2 * _object_area(same, parts)


def _object_area(dataset: SyntheticObjects, indices: range) -> int:
    """Pixels of the objects of ``dataset``'s images ``indices``."""
    return sum(int(dataset.render(i).object_mask.sum()) for i in indices)


def test_mixed_scene_parts_images_show_their_class(monkeypatch):
    """An odd image of class 36 + k draws PART_CLASSES[k]'s silhouette first."""
    dataset = SyntheticObjects("val", 24, 64, **MIXED)
    shapes, shape = [], Canvas.shape

    def spy_shape(self, rng, shape_id, *args):
        shapes.append(SHAPES[shape_id])
        return shape(self, rng, shape_id, *args)

    monkeypatch.setattr(Canvas, "shape", spy_shape)
    for index in range(1, 24, 4):
        shapes.clear()
        dataset.render(index)
        assert shapes[0] == dataset.classes[dataset.targets[index]].split("/")[0]


def test_mixed_scene_is_deterministic_per_seed_split_and_index():
    first, again = SyntheticObjects("test", 8, 64, seed=1, **MIXED), SyntheticObjects("test", 8, 64, seed=1, **MIXED)
    assert first.targets == again.targets and all(torch.equal(first[i][0], again[i][0]) for i in range(8))
    assert not torch.equal(first[3][0], SyntheticObjects("test", 8, 64, **MIXED)[3][0])


def test_pretraining_on_the_mixed_scene_has_its_60_classes(tiny_pretrain):
    path = pretrain.pretrained_weights(tiny_pretrain("data.scene=mixed", "data.parts_radius=[0.30,0.45]"))
    assert pretrain.pretraining_report(path)["chance"] == pytest.approx(1 / 60)


def test_a_reversed_parts_radius_range_is_refused():
    with pytest.raises(ValueError, match=r"data\.parts_radius"):
        SyntheticObjects("train", 4, 64, scene="mixed", parts_radius=(0.45, 0.30))
