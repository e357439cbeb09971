"""Tests of the embedded synthetic fine-grained dataset."""

import random
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fgvc_mix.data.synthetic import MAX_CLASSES, SyntheticFGVC


@pytest.fixture(scope="module")
def train() -> SyntheticFGVC:
    return SyntheticFGVC("train", num_samples=64, seed=3)


def test_same_seed_and_index_give_identical_samples(train: SyntheticFGVC) -> None:
    again = SyntheticFGVC("train", num_samples=64, seed=3)
    for i in (0, 17, 63):
        image, label, mask = train.sample_with_mask(i)
        image2, label2, mask2 = again.sample_with_mask(i)
        assert torch.equal(image, image2)
        assert label == label2
        assert torch.equal(mask, mask2)
    # A sample depends on (seed, split, index) alone, not on the global RNGs that workers reseed.
    first = train[5][0]
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        assert torch.equal(first, train[5][0])


def test_splits_and_seeds_draw_different_images(train: SyntheticFGVC) -> None:
    others = [SyntheticFGVC("val", num_samples=64, seed=3), SyntheticFGVC("train", num_samples=64, seed=4)]
    for other in others:
        for i in range(4):
            assert (train[i][0] - other[i][0]).abs().mean() > 0.05


def test_shapes_dtypes_and_ranges(train: SyntheticFGVC) -> None:
    image, label = train[0]
    assert image.shape == (3, 64, 64)
    assert image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert isinstance(label, int) and 0 <= label < 16
    small = SyntheticFGVC("test", num_samples=2, num_classes=5, image_size=40)
    image, _, mask = small.sample_with_mask(1)
    assert image.shape == (3, 40, 40) and mask.shape == (40, 40) and mask.dtype == torch.bool


def test_transform_is_applied_to_the_tensor_only_in_getitem() -> None:
    flipped = SyntheticFGVC("train", num_samples=4, transform=lambda x: x.flip(-1))
    plain = SyntheticFGVC("train", num_samples=4)
    assert torch.equal(flipped[2][0], plain[2][0].flip(-1))
    assert torch.equal(flipped.sample_with_mask(2)[0], plain[2][0])


def test_labels_cover_all_classes_balanced() -> None:
    ds = SyntheticFGVC("train", num_samples=100, num_classes=16)
    counts = Counter(ds.targets)
    assert sorted(counts) == list(range(16))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert [ds[i][1] for i in range(10)] == ds.targets[:10]
    assert ds.targets != sorted(ds.targets)  # shuffled, not in class order


def test_class_names() -> None:
    ds = SyntheticFGVC("train", num_samples=4)
    assert len(ds.classes) == ds.num_classes == 16
    assert len(set(ds.classes)) == 16
    assert ds.classes[1] == "circle-mark/striped-wing"
    assert len(set(SyntheticFGVC("train", num_samples=4, num_classes=MAX_CLASSES).classes)) == MAX_CLASSES


def test_part_masks_are_small_on_the_body_and_exclude_distractors(train: SyntheticFGVC) -> None:
    for i in range(24):
        sample = train.render(i)
        part, body, distractors = sample.part_mask, sample.body_mask, sample.distractor_mask
        fraction = part.float().mean().item()
        assert 0.02 < fraction < 0.08, fraction
        assert not (part & ~body).any()  # every part pixel is on the bird
        assert body.float().mean() > 2 * fraction  # parts are a small share of the bird
        assert distractors.any()
        assert not (distractors & (part | body)).any()


def test_parts_do_not_change_with_the_number_of_distractors() -> None:
    crowded = SyntheticFGVC("val", num_samples=8, num_distractors=6).render(3)
    empty = SyntheticFGVC("val", num_samples=8, num_distractors=0).render(3)
    assert not empty.distractor_mask.any()
    assert torch.equal(crowded.part_mask, empty.part_mask)
    assert not torch.equal(crowded.image, empty.image)


def test_part_pixels_differ_from_the_body_colour(train: SyntheticFGVC) -> None:
    # The head mark and wing patch must be visible: parts differ from the surrounding body.
    for i in range(8):
        sample = train.render(i)
        ring = sample.body_mask & ~sample.part_mask
        part_mean = sample.image[:, sample.part_mask].mean(1)
        body_mean = sample.image[:, ring].mean(1)
        assert (part_mean - body_mean).norm() > 0.05


@pytest.mark.parametrize("num_classes", [0, 1, MAX_CLASSES + 1])
def test_invalid_num_classes_is_rejected(num_classes: int) -> None:
    with pytest.raises(ValueError, match=rf"num_classes={num_classes}.*2 <= num_classes <= {MAX_CLASSES}"):
        SyntheticFGVC(num_classes=num_classes)


def test_invalid_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="split='dev'"):
        SyntheticFGVC(split="dev")


def test_index_out_of_range(train: SyntheticFGVC) -> None:
    with pytest.raises(IndexError):
        train[64]


def test_dataloader_with_two_workers() -> None:
    ds = SyntheticFGVC("train", num_samples=8, image_size=32)
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32)
    assert labels.tolist() == ds.targets[:4]
    assert torch.equal(images[1], ds[1][0])
