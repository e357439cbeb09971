"""Each real dataset reader on a tiny tree written in its exact official on-disk format."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import CONFIG_DIR
from helpers.datasets import image, lines, write_cub_style
from scipy.io import savemat

from fgvc_mix.data.aircraft import FGVCAircraft
from fgvc_mix.data.annotation_text import read_pairs
from fgvc_mix.data.cars import StanfordCars
from fgvc_mix.data.cub import CUB200
from fgvc_mix.data.dogs import StanfordDogs
from fgvc_mix.data.errors import DatasetError
from fgvc_mix.data.flowers102 import Flowers102
from fgvc_mix.data.nabirds import NABirds
from fgvc_mix.data.reader import Annotations, DatasetReader
from fgvc_mix.data.registry import DATASETS, build_dataset
from fgvc_mix.data.synthetic import SyntheticFGVC

#: Per dataset: its download page and one line of the expected tree, both shown by layout errors.
DOWNLOAD = {
    "cub": ("https://www.vision.caltech.edu/datasets/cub_200_2011/", "train_test_split.txt     <image id> <1 = train"),
    "cars": ("https://ai.stanford.edu/~jkrause/cars/car_dataset.html", "cars_test_annos_withlabels.mat"),
    "aircraft": ("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/", "images_{variant,family,manufacturer}_"),
    "flowers102": ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", "setid.mat         trnid, valid, tstid"),
    "dogs": ("http://vision.stanford.edu/aditya86/ImageNetDogs/", "lists/train_list.mat   file_list"),
    "nabirds": ("https://dl.allaboutbirds.org/nabirds", "hierarchy.txt            <child class id>"),
}


def assert_shows_layout(error: pytest.ExceptionInfo[DatasetError], name: str) -> None:
    """The message ends with the expected tree and the download page."""
    url, tree_line = DOWNLOAD[name]
    message = str(error.value)
    assert "Expected layout" in message and tree_line in message
    assert f"Download: {url}" in message


# --------------------------------------------------------------------------- writers


def struct_array(records: list[dict[str, Any]]) -> np.ndarray:
    """A 1xN MATLAB struct array, as in the Cars devkit files."""
    fields = list(records[0])
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for field in fields:
            value = record[field]
            arr[0, i][field] = value if isinstance(value, str) else np.array([[value]], dtype=np.uint16)
    return arr


def cell_row(strings: list[str]) -> np.ndarray:
    arr = np.empty((1, len(strings)), dtype=object)
    arr[0, :] = strings
    return arr


def cell_column(strings: list[str]) -> np.ndarray:
    return cell_row(strings).T


# --------------------------------------------------------------------------- CUB / NABirds


def test_cub_reads_both_splits(cub_root: Path) -> None:
    train = CUB200(cub_root, "train", transform=lambda im: im.size)
    test = CUB200(cub_root / "CUB_200_2011", "test")  # root may be the folder itself
    assert (len(train), len(test)) == (6, 3)
    assert train.num_classes == 3 and train.classes[0] == "001.Black_footed_Albatross"
    assert train.display_names[1] == "Laysan Albatross"
    assert train.targets == [0, 1, 0, 1, 0, 1]
    assert test.targets == [2, 2, 2]
    assert train[0] == ((8, 8), 0)
    assert train.boxes is not None and train.boxes[1] == (1.0, 2.0, 3.5, 4.0)
    assert test.samples[0][0].name == "img_0003.jpg"


def test_cub_errors(cub_root: Path) -> None:
    base = cub_root / "CUB_200_2011"
    with pytest.raises(DatasetError, match="no official validation split"):
        CUB200(cub_root, "val")
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        CUB200(cub_root, "dev")
    with pytest.raises(DatasetError, match=r"nowhere does not exist.*dataset\.root="):
        CUB200(cub_root / "nowhere", "train")
    with pytest.raises(DatasetError, match=r"cannot find images\.txt.*dataset\.root=") as info:
        CUB200(base / "images", "train")
    assert_shows_layout(info, "cub")

    labels = (base / "image_class_labels.txt").read_text().splitlines()
    labels[4] = "5 201"
    lines(base / "image_class_labels.txt", labels)
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt line 5: class id 201 is not one of the 3"):
        CUB200(cub_root, "train")

    lines(base / "train_test_split.txt", [f"{n} 1" for n in range(1, 10)])
    with pytest.raises(DatasetError, match=r"split 'test' is empty according to .*train_test_split\.txt"):
        CUB200(cub_root, "test")

    (base / "train_test_split.txt").unlink()
    with pytest.raises(DatasetError, match=r"train_test_split\.txt is missing") as info:
        CUB200(cub_root, "train")
    assert_shows_layout(info, "cub")


def test_cub_missing_image_raises_when_loaded(cub_root: Path) -> None:
    dataset = CUB200(cub_root, "train")  # construction opens no image
    dataset.samples[0][0].unlink()
    with pytest.raises(DatasetError, match=r"does not exist: .*img_0001\.jpg.*skip_bad_images=true"):
        dataset[0]
    assert len(CUB200(cub_root, "train", skip_bad_images=True)) == 5


def test_nabirds_sparse_leaf_ids(tmp_path: Path) -> None:
    base = tmp_path / "nabirds"
    classes = [("0", "Birds"), ("1", "Perching Birds"), ("295", "Swallow-tailed Kite"), ("300", "Snowy Egret")]
    classes += [("1010", "Orchard Oriole (Immature male)")]
    uuids = [f"{n:08x}-21dc-4d0c-bfe1-4cae3c85c829" for n in range(6)]
    class_of = ["1010", "295", "300", "295", "1010", "300"]
    images = [
        (u, f"{c.zfill(4)}/{u.replace('-', '')}.jpg", c, int(n < 4))
        for n, (u, c) in enumerate(zip(uuids, class_of, strict=True))
    ]
    write_cub_style(base, images, classes)
    lines(base / "hierarchy.txt", ["1 0", "295 1", "300 1", "1010 1"])

    train, test = NABirds(tmp_path, "train"), NABirds(base, "test")
    assert train.class_ids == ["295", "300", "1010"]
    assert train.classes == ["Swallow-tailed Kite", "Snowy Egret", "Orchard Oriole (Immature male)"]
    assert train.targets == [2, 0, 1, 0] and test.targets == [2, 1]
    assert train.num_classes == test.num_classes == 3
    assert train.samples[0][0] == base / "images" / "1010" / f"{uuids[0].replace('-', '')}.jpg"
    assert train[1][1] == 0

    lines(base / "hierarchy.txt", ["1 0", "295 1", "300 295", "1010 1"])
    with pytest.raises(DatasetError, match=r"class id\(s\) 295 .*not leaves in .*hierarchy\.txt"):
        NABirds(tmp_path, "train")


# --------------------------------------------------------------------------- Stanford Cars

CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012"]


def car_records(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "bbox_x1": 1,
            "bbox_y1": 2,
            "bbox_x2": 7,
            "bbox_y2": 6,
            "class": (i + offset) % 3 + 1,
            "fname": f"{i + 1:05d}.jpg",
        }
        for i in range(n)
    ]


def write_cars_devkit(
    root: Path, *, test_labels_in_devkit: bool = False, kaggle: bool = False, n_train: int = 4
) -> None:
    devkit = root / ("car_devkit/devkit" if kaggle else "devkit")
    devkit.mkdir(parents=True)
    savemat(devkit / "cars_meta.mat", {"class_names": cell_row(CAR_NAMES)})
    savemat(devkit / "cars_train_annos.mat", {"annotations": struct_array(car_records(n_train))})
    test_dir = devkit if test_labels_in_devkit else root
    savemat(test_dir / "cars_test_annos_withlabels.mat", {"annotations": struct_array(car_records(3, offset=1))})
    for split, n in (("train", n_train), ("test", 3)):
        folder = root / f"cars_{split}" / (f"cars_{split}" if kaggle else "")
        for i in range(n):
            image(folder / f"{i + 1:05d}.jpg")


@pytest.mark.parametrize("variant", ["torchvision", "snapmix", "kaggle"])
def test_cars_devkit_layouts(tmp_path: Path, variant: str) -> None:
    write_cars_devkit(tmp_path, test_labels_in_devkit=variant == "snapmix", kaggle=variant == "kaggle")
    train, test = StanfordCars(tmp_path, "train"), StanfordCars(tmp_path, "test")
    assert train.layout == "devkit" and (len(train), len(test)) == (4, 3)
    assert train.classes == CAR_NAMES and train.num_classes == 3
    assert train.targets == [0, 1, 2, 0] and test.targets == [1, 2, 0]
    assert train.boxes is not None and train.boxes[0] == (1.0, 2.0, 6.0, 4.0)
    nested = "cars_test/cars_test" if variant == "kaggle" else "cars_test"
    assert test.samples[2][0] == tmp_path / nested / "00003.jpg"
    img, label = test[2]
    assert img.mode == "RGB" and label == 0


def test_cars_one_record_mat_and_torchvision_parent(tmp_path: Path) -> None:
    write_cars_devkit(tmp_path / "stanford_cars", n_train=1)
    train = StanfordCars(tmp_path, "train")
    assert len(train) == 1 and train.targets == [0]
    assert train.samples[0][0] == tmp_path / "stanford_cars" / "cars_train" / "00001.jpg"


def test_cars_combined_release(tmp_path: Path) -> None:
    records = [
        {
            "relative_im_path": f"car_ims/{i + 1:06d}.jpg",
            "bbox_x1": 3,
            "bbox_y1": 4,
            "bbox_x2": 8,
            "bbox_y2": 8,
            "class": i % 3 + 1,
            "test": int(i >= 3),
        }
        for i in range(5)
    ]
    savemat(tmp_path / "cars_annos.mat", {"annotations": struct_array(records), "class_names": cell_row(CAR_NAMES)})
    for r in records:
        image(tmp_path / r["relative_im_path"])
    train, test = StanfordCars(tmp_path, "train"), StanfordCars(tmp_path, "test")
    assert train.layout == "combined" and (len(train), len(test)) == (3, 2)
    assert train.targets == [0, 1, 2] and test.targets == [0, 1]
    assert test.samples[1][0] == tmp_path / "car_ims" / "000005.jpg"
    assert test.boxes == [(3.0, 4.0, 5.0, 4.0)] * 2


def test_cars_errors(tmp_path: Path) -> None:
    (tmp_path / "devkit").mkdir()
    savemat(tmp_path / "devkit" / "cars_meta.mat", {"class_names": cell_row(CAR_NAMES)})
    savemat(tmp_path / "devkit" / "cars_test_annos.mat", {"annotations": struct_array(car_records(2))})
    (tmp_path / "cars_test").mkdir()
    with pytest.raises(DatasetError, match="cannot recognise the Stanford Cars layout") as info:
        StanfordCars(tmp_path, "test")
    message = str(info.value)
    assert "[found]   devkit/cars_meta.mat" in message
    assert "[missing] cars_test_annos_withlabels.mat" in message
    assert "[found]   cars_test/" in message and "[missing] car_ims/" in message
    assert "cars_test_annos.mat has no labels" in message and "dataset.root=" in message
    assert_shows_layout(info, "cars")
    assert "Kaggle" in message  # the official links are dead: name the mirrors

    records = car_records(3)
    records[1]["class"] = 197
    savemat(tmp_path / "devkit" / "cars_meta.mat", {"class_names": cell_row(CAR_NAMES)})
    savemat(tmp_path / "devkit" / "cars_test_annos_withlabels.mat", {"annotations": struct_array(records)})
    with pytest.raises(
        DatasetError, match=r"cars_test_annos_withlabels\.mat record 2: class id 197 is out of range 1\.\.3"
    ):
        StanfordCars(tmp_path, "test")

    savemat(tmp_path / "devkit" / "cars_test_annos_withlabels.mat", {"annos": struct_array(records)})
    with pytest.raises(DatasetError, match=r"withlabels\.mat has no variable 'annotations' \(found: annos\)"):
        StanfordCars(tmp_path, "test")


# --------------------------------------------------------------------------- FGVC-Aircraft

AIRCRAFT = {"1025794": "707-320", "0062765": "F/A-18", "1042824": "Cessna 172", "0034309": "A300B4"}


def write_aircraft(root: Path) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    lines(data / "variants.txt", ["707-320", "A300B4", "Cessna 172", "F/A-18"])
    lines(data / "manufacturers.txt", ["Boeing", "Cessna"])
    ids = list(AIRCRAFT)
    splits = {"train": ids[:2], "val": ids[2:3], "trainval": ids[:3], "test": ids[3:]}
    for split, members in splits.items():
        lines(data / f"images_variant_{split}.txt", [f"{i} {AIRCRAFT[i]}" for i in members])
        lines(
            data / f"images_manufacturer_{split}.txt",
            [f"{i} {'Cessna' if 'Cessna' in AIRCRAFT[i] else 'Boeing'}" for i in members],
        )
    for i in ids:
        image(data / "images" / f"{i}.jpg", size=(12, 30))
    return data


def test_aircraft_names_splits_levels_and_banner(tmp_path: Path) -> None:
    data = write_aircraft(tmp_path)
    train = FGVCAircraft(tmp_path, "train")  # use_val=False: train = trainval
    assert train.classes == ["707-320", "A300B4", "Cessna 172", "F/A-18"]
    assert train.targets == [0, 3, 2]
    assert FGVCAircraft(data.parent, "train", use_val=True).targets == [0, 3]
    assert FGVCAircraft(data, "val", use_val=True).targets == [2]
    assert FGVCAircraft(data, "test").samples == [(data / "images" / "0034309.jpg", 1)]

    makers = FGVCAircraft(tmp_path, "train", level="manufacturer")
    assert makers.num_classes == 2 and makers.targets == [0, 0, 1]

    img, _ = train[0]
    assert img.size == (12, 10)  # 20-px banner cut before any transform
    assert FGVCAircraft(tmp_path, "train", crop_banner=False, transform=lambda im: im.size)[0][0] == (12, 30)


def test_aircraft_banner_scales_with_reduced_decode(tmp_path: Path) -> None:
    data = write_aircraft(tmp_path)
    image(data / "images" / "0034309.jpg", size=(160, 240))
    assert FGVCAircraft(tmp_path, "test")[0][0].size == (160, 220)
    # draft_size=40 decodes at 1/4 scale (40 x 60): the 20-px banner becomes 5 px.
    assert FGVCAircraft(tmp_path, "test", draft_size=40)[0][0].size == (40, 55)


def test_aircraft_errors(tmp_path: Path) -> None:
    data = write_aircraft(tmp_path)
    with pytest.raises(DatasetError, match=r"split 'val' needs dataset\.options\.use_val=true"):
        FGVCAircraft(tmp_path, "val")
    with pytest.raises(DatasetError, match=r"unknown dataset\.options\.level='model'"):
        FGVCAircraft(tmp_path, "train", level="model")
    with pytest.raises(DatasetError, match=r"families\.txt is missing") as info:
        FGVCAircraft(tmp_path, "train", level="family")
    assert_shows_layout(info, "aircraft")
    lines(data / "images_variant_test.txt", ["0034309 A300B4", "1025794 747-400"])
    with pytest.raises(DatasetError, match=r"images_variant_test\.txt line 2: class '747-400' is not listed"):
        FGVCAircraft(tmp_path, "test")
    lines(data / "images_variant_test.txt", [])
    with pytest.raises(DatasetError, match=r"split 'test' is empty according to .*images_variant_test\.txt"):
        FGVCAircraft(tmp_path, "test")


# --------------------------------------------------------------------------- Flowers-102


def write_flowers(root: Path, labels: list[int]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.float64)})
    ids = {"trnid": [1, 2], "valid": [3], "tstid": [4, 5]}
    savemat(root / "setid.mat", {k: np.array([v], dtype=np.float64) for k, v in ids.items()})
    for n in range(1, len(labels) + 1):
        image(root / "jpg" / f"image_{n:05d}.jpg")


def test_flowers_splits(tmp_path: Path) -> None:
    write_flowers(tmp_path / "flowers-102", [3, 1, 2, 2, 3])
    train = Flowers102(tmp_path, "train")
    assert train.classes == ["001", "002", "003"] and train.targets == [2, 0, 1]
    assert Flowers102(tmp_path, "train", use_val=True).targets == [2, 0]
    val = Flowers102(tmp_path, "val", use_val=True)
    assert val.samples == [(tmp_path / "flowers-102" / "jpg" / "image_00003.jpg", 1)]
    assert Flowers102(tmp_path, "test").targets == [1, 2]
    with pytest.raises(DatasetError, match=r"split 'val' needs dataset\.options\.use_val=true"):
        Flowers102(tmp_path, "val")


def test_flowers_label_out_of_range(tmp_path: Path) -> None:
    write_flowers(tmp_path, [3, 0, 2, 2, 3])
    with pytest.raises(DatasetError, match=r"imagelabels\.mat labels entry 2: class id 0 is out of range"):
        Flowers102(tmp_path, "train")
    write_flowers(tmp_path, [1, 2])
    with pytest.raises(DatasetError, match=r"setid\.mat valid entry 1: image number 3 is out of range 1\.\.2"):
        Flowers102(tmp_path, "train")
    (tmp_path / "setid.mat").unlink()
    with pytest.raises(DatasetError, match=r"setid\.mat is missing") as info:
        Flowers102(tmp_path, "train")
    assert_shows_layout(info, "flowers102")


# --------------------------------------------------------------------------- Stanford Dogs


def write_dogs_list(path: Path, files: list[str], labels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"file_list": cell_column(files), "labels": np.array(labels, dtype=np.float64).reshape(-1, 1)})


@pytest.mark.parametrize("lists_dir", ["lists", ""])
def test_dogs(tmp_path: Path, lists_dir: str) -> None:
    synsets = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02116738-African_hunting_dog"]
    train = [f"{synsets[c]}/{synsets[c][:9]}_{n}.jpg" for n, c in enumerate([0, 1, 0])]
    test = [f"{synsets[2]}/{synsets[2][:9]}_7.jpg"]
    write_dogs_list(tmp_path / lists_dir / "train_list.mat", train, [1, 2, 1])
    write_dogs_list(tmp_path / lists_dir / "test_list.mat", test, [3])
    for rel in train + test:
        image(tmp_path / "Images" / rel)
    dogs = StanfordDogs(tmp_path, "train")
    assert dogs.classes == ["Chihuahua", "Japanese_spaniel", "African_hunting_dog"]  # named from both lists
    assert dogs.synsets == synsets and dogs.targets == [0, 1, 0]
    assert StanfordDogs(tmp_path, "test").samples == [(tmp_path / "Images" / test[0], 2)]
    assert dogs[1][1] == 1


def test_dogs_errors(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    with pytest.raises(DatasetError, match=r"lists/train_list\.mat is missing") as info:
        StanfordDogs(tmp_path, "train")
    assert_shows_layout(info, "dogs")
    write_dogs_list(tmp_path / "lists" / "train_list.mat", ["n1-A/a.jpg", "n1-A/b.jpg"], [1, 0])
    with pytest.raises(DatasetError, match=r"train_list\.mat entry 2: class id 0 is out of range"):
        StanfordDogs(tmp_path, "train")


# --------------------------------------------------------------------------- registry


READERS = {
    "cub": CUB200,
    "cars": StanfordCars,
    "aircraft": FGVCAircraft,
    "flowers102": Flowers102,
    "dogs": StanfordDogs,
    "nabirds": NABirds,
}


def test_registry(cub_root: Path) -> None:
    # by name, not by position: a new dataset is a reader, a registry entry and a conf/dataset YAML, not this test
    assert set(DATASETS) == {path.stem for path in (CONFIG_DIR / "dataset").glob("*.yaml")}
    assert set(READERS) | {"folder", "synthetic"} <= set(DATASETS)
    assert all(cls.name == name and DATASETS[name].has_val == cls.has_val for name, cls in READERS.items())
    assert {name for name, cls in READERS.items() if cls.has_val} == {"aircraft", "flowers102"}  # official val splits
    assert DATASETS["synthetic"].has_val and DATASETS["folder"].has_val
    assert [name for name, entry in DATASETS.items() if not entry.on_disk] == ["synthetic"]
    dataset = build_dataset("cub", cub_root, "test", skip_bad_images=False)
    assert isinstance(dataset, CUB200) and len(dataset) == 3
    with pytest.raises(DatasetError, match=f"Unknown dataset 'cub200'; choose one of: {', '.join(DATASETS)} "):
        build_dataset("cub200", cub_root, "train")
    with pytest.raises(
        DatasetError, match=r"unknown option\(s\) dataset\.options\.level; accepted: dataset\.options\.skip_bad_images"
    ):
        build_dataset("cub", cub_root, "train", level="variant")
    for name, cls in READERS.items():  # every reader takes the shared draft_size option
        assert "draft_size" in DATASETS[name].options, name
        assert DATASETS[name].options == tuple(
            p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root", "split", "transform")
        )
    assert build_dataset("cub", cub_root, "test", draft_size=256).draft_size == 256


def test_synthetic_is_registered_like_the_readers() -> None:
    sizes = {"train_size": 5, "val_size": 3, "test_size": 4}
    val = build_dataset("synthetic", None, "val", num_classes=4, image_size=32, **sizes, seed=1)
    assert isinstance(val, SyntheticFGVC) and len(val) == 3 and val.num_classes == 4 and val.image_size == 32
    assert val.seed == 1 and val.split == "val"
    with pytest.raises(DatasetError, match=r"unknown option\(s\) dataset\.options\.level; accepted: .*train_size"):
        build_dataset("synthetic", None, "train", num_classes=4, image_size=32, **sizes, level="variant")


class TinyReader(DatasetReader):
    """A new dataset as README "Extending" describes it: class attributes and ``read``, nothing else."""

    name = "tiny"
    homepage = "https://example.org/tiny"
    expected_layout = """
        tiny/labels.txt   <image file> <class name>
    """
    root_candidates = ("", "tiny")
    root_marker = "labels.txt"

    def read(self) -> Annotations:
        rows = read_pairs(self.root / "labels.txt", dataset=self.name)
        classes = sorted({name for _, _, name in rows})
        return Annotations([(self.root / file, classes.index(name)) for _, file, name in rows], classes)


def test_a_new_reader_gets_the_shared_constructor(tmp_path: Path) -> None:
    lines(tmp_path / "tiny" / "labels.txt", ["b.jpg wren", "a.jpg robin"])
    for file in ("a.jpg", "b.jpg"):
        image(tmp_path / "tiny" / file)
    tiny = TinyReader(tmp_path, "train", transform=lambda im: im.size, draft_size=8)
    assert tiny.root == tmp_path / "tiny" and tiny.split == "train" and tiny.draft_size == 8
    assert tiny.classes == ["robin", "wren"] and tiny.targets == [1, 0] and tiny[1] == ((8, 8), 0)
    assert TinyReader.option_names() == ["skip_bad_images", "draft_size"]
    with pytest.raises(DatasetError, match="tiny has no official validation split"):
        TinyReader(tmp_path, "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"(?s)cannot find labels\.txt.*Expected layout.*tiny/labels\.txt.*Download"):
        TinyReader(tmp_path / "empty", "train")


@pytest.mark.parametrize("name", list(READERS))
def test_missing_root_shows_layout_and_download_page(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match=r"nowhere does not exist") as info:
        build_dataset(name, tmp_path / "nowhere", "train")
    assert_shows_layout(info, name)
