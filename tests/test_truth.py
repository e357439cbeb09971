"""Label-noise truth on real datasets: keypoint discs and object boxes through the training geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.datasets import image, lines
from PIL import Image
from test_datasets import write_aircraft, write_cars_devkit, write_dogs_list
from torchvision.transforms import v2

from fgvc_mix.data.aircraft import FGVCAircraft
from fgvc_mix.data.cars import StanfordCars
from fgvc_mix.data.cub import CUB200
from fgvc_mix.data.dogs import StanfordDogs
from fgvc_mix.data.errors import DatasetError
from fgvc_mix.data.flowers102 import Flowers102
from fgvc_mix.data.nabirds import NABirds
from fgvc_mix.data.synthetic import SyntheticFGVC
from fgvc_mix.data.transforms import train_transform
from fgvc_mix.data.truth import truth_map
from fgvc_mix.evaluation.label_noise import draw_pairs, masked_samples
from fgvc_mix.mixing import cutmix, fmix, snapmix
from fgvc_mix.mixing.label_noise import label_noise, mixer_label_score, semantic_shares

TO_TENSOR = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])  # no geometry


def write_cub(
    base: Path,
    sizes: list[tuple[int, int]],
    boxes: list[str | None],
    parts: list[list[str]] | None,
    photos: dict[int, Image.Image] | None = None,
) -> Path:
    """A CUB tree of ``len(sizes)`` train images in class 1/2 alternately; ``boxes`` are
    ``bounding_boxes.txt`` values (``None``: no line); ``parts`` the ``part_locs.txt`` values."""
    ids = [str(n + 1) for n in range(len(sizes))]
    rel = [f"00{n % 2 + 1}.Bird/img_{n}.jpg" for n in range(len(sizes))]
    lines(base / "images.txt", [f"{i} {r}" for i, r in zip(ids, rel, strict=True)])
    lines(base / "image_class_labels.txt", [f"{i} {n % 2 + 1}" for n, i in enumerate(ids)])
    lines(base / "train_test_split.txt", [f"{i} 1" for i in ids])
    lines(base / "classes.txt", ["1 001.Bird", "2 002.Bird"])
    lines(base / "bounding_boxes.txt", [f"{i} {b}" for i, b in zip(ids, boxes, strict=True) if b is not None])
    if parts is not None:
        rows = [
            f"{i} {k + 1} {p}" for i, image_parts in zip(ids, parts, strict=True) for k, p in enumerate(image_parts)
        ]
        lines(base / "parts" / "part_locs.txt", rows)
    for n, (r, size) in enumerate(zip(rel, sizes, strict=True)):
        if photos and n in photos:
            (base / "images" / r).parent.mkdir(parents=True, exist_ok=True)
            photos[n].save(base / "images" / r, quality=95)
        else:
            image(base / "images" / r, size=size)
    return base


def test_parts_truth_on_a_hand_built_pair(tmp_path: Path) -> None:
    # Image 0 (40 x 20, box = the image): radius 0.1 * sqrt(800) = 2.83 px, so each disc is the
    # 5 x 5 square around its keypoint (2^2 + 2^2 = 8 <= 8.0). Its part at (20, 10) is invisible.
    # Image 1: a box reaching past the right and bottom borders; parts all invisible.
    parts = [["10 10 1", "20 10 0", "30 10 1"], ["5 5 0"]]
    write_cub(tmp_path, [(40, 20), (40, 20)], ["0 0 40 20", "30 5 25 20"], parts)
    cub = CUB200(tmp_path, "train", transform=TO_TENSOR)
    assert cub.truth_kinds() == ("parts", "box")
    _, _, units = cub.sample_with_truth(0, "parts")
    assert units.shape == (2, 20, 40) and units.sum(dim=(1, 2)).tolist() == [25, 25]
    assert units[0, 8:13, 8:13].all() and units[1, 8:13, 28:33].all()

    _, _, masks = masked_samples(cub, 1, truth="parts")
    # Hiding x in [0, 20) hides the first visible part and not the second: half of the parts stay.
    box_a = torch.tensor([[0, 0, 20, 20]])
    share_a, share_b = semantic_shares(masks, torch.tensor([0]), box_a, box_a)
    assert share_a.item() == pytest.approx(0.5) and share_b.item() == pytest.approx(0.5)
    box_a = torch.tensor([[0, 0, 11, 20]])  # cuts the first disc after 3 of its 5 columns
    assert semantic_shares(masks, torch.tensor([0]), box_a, box_a)[0].item() == pytest.approx(1 - 0.5 * 3 / 5)

    _, _, box_units = cub.sample_with_truth(1, "box")
    assert box_units.sum().item() == 10 * 15  # clipped at the border: columns 30..39, rows 5..19
    assert truth_map(cub.sample_with_truth(1, "parts")[2]) is None  # no visible part: no truth


def test_missing_annotations_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"image id 2 has no line in .*bounding_boxes\.txt"):
        CUB200(write_cub(tmp_path / "a", [(8, 8)] * 2, ["0 0 4 4", None], None), "train")
    no_parts = CUB200(write_cub(tmp_path / "b", [(8, 8)] * 2, ["0 0 4 4"] * 2, None), "train", transform=TO_TENSOR)
    with pytest.raises(DatasetError, match=r"truth=parts.*parts/part_locs\.txt.*available: box"):
        masked_samples(no_parts, 2, truth="parts")
    assert masked_samples(no_parts, 2)[2].sum().item() == 2 * 16  # the first kind it has: box
    with pytest.raises(DatasetError, match="truth='segments' is not known; choose one of parts, box"):
        masked_samples(no_parts, 2, truth="segments")
    with pytest.raises(ValueError, match="the synthetic birds have truth=parts"):
        masked_samples(SyntheticFGVC("test", 4), 2, truth="box")
    flowers = Flowers102.__new__(Flowers102)  # a release without boxes or parts
    flowers.boxes = flowers.parts = None
    with pytest.raises(DatasetError, match=r"no truth=box here: its files have none; boxes come with cub"):
        flowers.check_truth("box")
    with pytest.raises(ValueError, match="no truth to score"):
        masked_samples(torch.utils.data.TensorDataset(torch.zeros(4)), 2)


@pytest.mark.parametrize("resize", ["shorter", "square"])
def test_keypoints_land_within_one_pixel_of_where_they_are_drawn(tmp_path: Path, resize: str) -> None:
    """A grey photo with red 7 x 7 dots at its keypoints: after resize, random crop and flip,
    each part disc is centred on its dot to within a pixel."""
    points = [(40, 30), (100, 45), (70, 90), (45, 80)]  # >= 30 px inside: the crop never cuts a disc
    photo = np.full((120, 140, 3), 128, dtype=np.uint8)
    for x, y in points:
        photo[y - 3 : y + 4, x - 3 : x + 4] = (255, 0, 0)
    parts = [[f"{x} {y} 1" for x, y in points]] * 4
    write_cub(tmp_path, [(140, 120)] * 4, ["0 0 140 120"] * 4, parts, {n: Image.fromarray(photo) for n in range(4)})
    transform = v2.Compose([v2.ToImage(), *train_transform(96, 100, resize=resize).transforms[1:4]])
    cub = CUB200(tmp_path, "train")
    flips = set()
    for seed in range(4):
        torch.manual_seed(seed)
        img, units = transform(*cub.sample_with_truth(seed, "parts")[::2])
        red = (img[0].float() > 200) & (img[1].float() < 80)
        for unit in units.bool():
            rows, cols = torch.nonzero(unit, as_tuple=True)
            dot_rows, dot_cols = torch.nonzero(unit & red, as_tuple=True)
            assert abs(rows.float().mean() - dot_rows.float().mean()) <= 1.0
            assert abs(cols.float().mean() - dot_cols.float().mean()) <= 1.0
        flips.add(bool(red[:, : img.shape[-1] // 2].sum() < red[:, img.shape[-1] // 2 :].sum()))
    assert flips == {True, False}  # both flip states were checked


def test_area_rule_is_exact_when_the_object_fills_the_image_and_oracle_cams_are_exact(tmp_path: Path) -> None:
    n = 8
    sizes = [(48 + 4 * k, 40) for k in range(n)]
    parts = [[f"{5 + 3 * k} {10 + k} 1", f"{30 + k} 25 1", "20 20 0"] for k in range(n)]
    write_cub(tmp_path, sizes, [f"0 0 {w} {h}" for w, h in sizes], parts)
    cub = CUB200(tmp_path, "train", transform=train_transform(32, 36, resize="shorter"))
    images, targets, boxes = masked_samples(cub, n, seed=1, truth="box")
    partner, box_a, box_b = draw_pairs(n, 32, 32, generator=torch.Generator().manual_seed(0))
    assert label_noise(torch.rand(n, 32, 32), boxes, targets, partner, box_a, box_b).cutmix.mae < 1e-6
    area = mixer_label_score(lambda x, y: cutmix(x, y, per_sample=True), images, boxes, targets, n)
    assert area.score.mae < 1e-6 and area.num_pairs > 0

    images, targets, masks = masked_samples(cub, n, seed=1, truth="parts")
    assert masks.dtype == torch.float32 and torch.allclose(masks.sum(dim=(1, 2)), torch.ones(n))
    report = label_noise(masks, masks, targets, partner, box_a, box_b)
    assert report.snapmix.mae < 1e-6 and report.cutmix.mae > 0.05

    def oracle_snapmix(x, y):
        return snapmix(x, y, masks, per_sample=True, same_label="keep", generator=torch.Generator().manual_seed(2))

    assert mixer_label_score(oracle_snapmix, images, masks, targets, n).score.mae < 1e-6

    def oracle_fmix(x, y):  # a mask mixer: the truth through MixedBatch.mask
        return fmix(x, y, per_sample=True, cams=masks, generator=torch.Generator().manual_seed(3))

    assert mixer_label_score(oracle_fmix, images, masks, targets, n).score.mae < 1e-6


def test_nabirds_cars_aircraft_and_dogs_give_box_truth(tmp_path: Path) -> None:
    nabirds = write_cub(tmp_path / "nabirds", [(10, 10)] * 2, ["1 1 4 4"] * 2, [["2 2 1"], ["3 3 0"]])
    assert NABirds(nabirds, "train").truth_kinds() == ("parts", "box")

    write_cars_devkit(tmp_path / "cars")  # bbox (1, 2)-(7, 6) on 8 x 8 images
    assert StanfordCars(tmp_path / "cars", "train").sample_with_truth(0, "box")[2].sum().item() == 6 * 4

    # Aircraft: 1-based inclusive box rows 21..30 of a 12 x 30 image reach into the 20-px banner.
    data = write_aircraft(tmp_path / "aircraft")
    assert FGVCAircraft(data, "train").truth_kinds() == ()
    lines(data / "images_box.txt", [f"{i} 2 21 11 30" for i in ("1025794", "0062765", "1042824", "0034309")])
    _, _, units = FGVCAircraft(data, "train").sample_with_truth(0, "box")
    assert units.shape == (1, 10, 12) and units.sum().item() == 0  # all of it under the banner
    units = FGVCAircraft(data, "train", crop_banner=False).sample_with_truth(0, "box")[2]
    assert units.sum().item() == 10 * 10 and units[0, 20:30, 1:11].all()
    lines(data / "images_box.txt", [f"{i} 2 1 11 30" for i in ("1025794", "0062765", "1042824", "0034309")])
    assert FGVCAircraft(data, "train").sample_with_truth(0, "box")[2].sum().item() == 10 * 10  # rows 0..9 kept

    synset = "n02085620-Chihuahua"
    write_dogs_list(tmp_path / "dogs" / "lists" / "train_list.mat", [f"{synset}/{synset[:9]}_1.jpg"], [1])
    image(tmp_path / "dogs" / "Images" / synset / f"{synset[:9]}_1.jpg", size=(20, 10))
    dogs = StanfordDogs(tmp_path / "dogs", "train")
    with pytest.raises(DatasetError, match=r"truth=box.*Annotation/"):
        dogs.check_truth("box")
    xml = "<annotation>{}</annotation>".format(
        "".join(
            f"<object><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
            for a, b, c, d in ((1, 1, 4, 4), (3, 3, 20, 10))
        )
    )
    (tmp_path / "dogs" / "Annotation" / synset).mkdir(parents=True)
    (tmp_path / "dogs" / "Annotation" / synset / f"{synset[:9]}_1").write_text(xml)
    assert dogs.sample_with_truth(0, "box")[2].sum().item() == 4 * 4 + 18 * 8 - 2 * 2  # union of two dogs
    assert dogs.truth_coverage() == {"boxes": 1, "parts": 0, "visible parts": 0}

    # Each through the training geometry into the meter's samples (square resize, crop, flip).
    square = train_transform(12, 16, resize="square")
    for reader in (
        StanfordCars(tmp_path / "cars", "train", transform=square),
        FGVCAircraft(data, "train", transform=square),
        StanfordDogs(tmp_path / "dogs", "train", transform=square),
    ):
        images, _, boxes = masked_samples(reader, 1, truth="box")
        assert images.shape == (1, 3, 12, 12) and boxes.shape == (1, 12, 12) and boxes.any(), reader.name


def test_a_reduced_decode_scales_the_annotations(tmp_path: Path) -> None:
    write_cub(tmp_path, [(160, 240)] * 2, ["0 0 80 120"] * 2, [["40 60 1"]] * 2)
    full = CUB200(tmp_path, "train").sample_with_truth(0, "box")[2]
    reduced = CUB200(tmp_path, "train", draft_size=40).sample_with_truth(0, "box")[2]  # decoded at 1/4: 40 x 60
    assert full.sum().item() == 80 * 120 and reduced.shape == (1, 60, 40) and reduced.sum().item() == 20 * 30
    disc = CUB200(tmp_path, "train", draft_size=40).sample_with_truth(0, "parts")[2][0]
    rows, cols = torch.nonzero(disc, as_tuple=True)
    assert (rows.float().mean().item(), cols.float().mean().item()) == (15.0, 10.0)  # (40, 60) / 4
