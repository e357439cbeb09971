"""Stanford Cars (Krause, Stark, Deng & Fei-Fei, 3D Object Representations for Fine-Grained
Categorization, 3dRR workshop at ICCV 2013).

16,185 images of 196 car models (make, model, year): 8,144 train / 8,041 test; no official
validation split. Three on-disk layouts are read, listed in :attr:`StanfordCars.expected_layout`
(``dataset.root`` may also be their parent ``stanford_cars/``, as torchvision names it): the
devkit layout of torchvision and the SnapMix authors (test labels beside ``devkit/`` or inside
it), the Kaggle copy of it, which nests the images (``cars_train/cars_train/*.jpg``) and the
devkit (``car_devkit/devkit/``), and the combined release (``cars_annos.mat`` + ``car_ims/``).
The official download links are dead, so the homepage names the mirrors.

Class ids in the files are 1-based; labels are 0-based.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .annotation_checks import check_class_id, check_not_empty, parse_int
from .annotation_matlab import load_mat, mat_records, mat_strings
from .errors import LayoutError
from .image_list import Box
from .reader import Annotations, DatasetReader, check_root

DEVKIT_DIRS = ("devkit", "car_devkit/devkit", "")
TEST_LABEL_DIRS = ("", "devkit", "car_devkit", "car_devkit/devkit")
ANNOTATION_FILES = {"train": "cars_train_annos.mat", "test": "cars_test_annos_withlabels.mat"}
BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")


def _first_file(base: Path, candidates: list[str]) -> Path | None:
    return next((base / c for c in candidates if (base / c).is_file()), None)


def _image_dir(base: Path, name: str) -> Path | None:
    """``cars_train/``, or ``cars_train/cars_train/`` as in the Kaggle copy."""
    nested = base / name / name
    if nested.is_dir():
        return nested
    return base / name if (base / name).is_dir() else None


def _devkit_paths(base: Path, split: str) -> dict[str, Path | None]:
    annos = ANNOTATION_FILES[split]
    annos_dirs = DEVKIT_DIRS if split == "train" else TEST_LABEL_DIRS
    return {
        "meta": _first_file(base, [f"{d}/cars_meta.mat".lstrip("/") for d in DEVKIT_DIRS]),
        "annos": _first_file(base, [f"{d}/{annos}".lstrip("/") for d in annos_dirs]),
        "images": _image_dir(base, f"cars_{split}"),
    }


def _box(record: dict[str, Any]) -> Box:
    x1, y1, x2, y2 = (float(record[f]) for f in BOX_FIELDS)
    return (x1, y1, x2 - x1, y2 - y1)


class StanfordCars(DatasetReader):
    """Stanford Cars; ``classes`` are the devkit names (``AM General Hummer SUV 2000``).

    ``layout`` says which layout was read (``"devkit"`` or ``"combined"``); ``boxes`` holds
    per-sample ``(x1, y1, x2 - x1, y2 - y1)`` from the annotation's bbox fields.
    """

    name = "cars"
    homepage = (
        "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (offline: use a mirror, e.g. Kaggle's "
        "'stanford-cars-dataset' plus its 'cars_test_annos_withlabels' file, or a Hugging Face Hub copy)"
    )
    expected_layout = """
        stanford_cars/
            devkit/cars_meta.mat              class_names: 1x196 cell
            devkit/cars_train_annos.mat       annotations: struct(bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname)
            cars_test_annos_withlabels.mat    same struct, beside devkit/ or inside it
            cars_train/00001.jpg ...          (Kaggle: cars_train/cars_train/, car_devkit/devkit/)
            cars_test/00001.jpg ...
        or the combined release:
            cars_annos.mat                    annotations (relative_im_path, bbox_*, class, test), class_names
            car_ims/000001.jpg ...
    """

    truth_files: ClassVar[dict[str, str]] = {"box": "the bbox_* fields of the annotation .mat"}

    def locate(self, root: str | Path) -> Path:
        """The first of ``root`` and ``root/stanford_cars`` in the devkit or the combined layout."""
        root = check_root(root, dataset=self.name, expected="folder holding devkit/ or cars_annos.mat")
        bases = [root] + ([root / "stanford_cars"] if (root / "stanford_cars").is_dir() else [])
        for base in bases:
            if all(_devkit_paths(base, self.split).values()):
                self.layout = "devkit"
                return base
            if (base / "cars_annos.mat").is_file() and (base / "car_ims").is_dir():
                self.layout = "combined"
                return base
        raise LayoutError(self._layout_report(bases[-1], self.split))

    def read(self) -> Annotations:
        return self._read_devkit() if self.layout == "devkit" else self._read_combined()

    def _read_devkit(self) -> Annotations:
        paths = _devkit_paths(self.root, self.split)
        meta_path, annos_path, image_dir = paths["meta"], paths["annos"], paths["images"]
        assert meta_path and annos_path and image_dir
        classes = mat_strings(
            load_mat(meta_path, dataset=self.name), "class_names", dataset=self.name, source=meta_path
        )
        records = mat_records(
            load_mat(annos_path, dataset=self.name),
            "annotations",
            (*BOX_FIELDS, "class", "fname"),
            dataset=self.name,
            source=annos_path,
        )
        samples = [
            (image_dir / str(r["fname"]), self._label(r["class"], len(classes), annos_path, i))
            for i, r in enumerate(records, start=1)
        ]
        check_not_empty(samples, dataset=self.name, split=self.split, source=annos_path)
        return Annotations(samples, classes, [_box(r) for r in records])

    def _read_combined(self) -> Annotations:
        path = self.root / "cars_annos.mat"
        mat = load_mat(path, dataset=self.name)
        classes = mat_strings(mat, "class_names", dataset=self.name, source=path)
        records = mat_records(
            mat,
            "annotations",
            (*BOX_FIELDS, "class", "test", "relative_im_path"),
            dataset=self.name,
            source=path,
        )
        want_test = self.split == "test"
        samples, boxes = [], []
        for i, r in enumerate(records, start=1):
            is_test = parse_int(r["test"], dataset=self.name, source=path, where=f"record {i} field 'test'")
            if bool(is_test) == want_test:
                samples.append((self.root / str(r["relative_im_path"]), self._label(r["class"], len(classes), path, i)))
                boxes.append(_box(r))
        check_not_empty(samples, dataset=self.name, split=self.split, source=path)
        return Annotations(samples, classes, boxes)

    def _label(self, value: Any, num_classes: int, source: Path, record: int) -> int:
        where = f"record {record}"
        class_id = parse_int(value, dataset=self.name, source=source, where=where)
        return check_class_id(class_id, num_classes=num_classes, first=1, dataset=self.name, source=source, where=where)

    def _layout_report(self, root: Path, split: str) -> str:
        """List which expected files were found, so the user sees what to move where."""
        paths = _devkit_paths(root, split)
        annos_where = "inside devkit/" if split == "train" else "beside or inside devkit/"

        def mark(found: bool) -> str:
            return "[found]  " if found else "[missing]"

        lines = [
            f"{self.name}: cannot recognise the Stanford Cars layout under {root} for split {split!r}.",
            "  devkit layout (torchvision / SnapMix / Kaggle):",
            f"    {mark(paths['meta'] is not None)} devkit/cars_meta.mat",
            f"    {mark(paths['annos'] is not None)} {ANNOTATION_FILES[split]} ({annos_where})",
            f"    {mark(paths['images'] is not None)} cars_{split}/ (or cars_{split}/cars_{split}/)",
            "  combined layout:",
            f"    {mark((root / 'cars_annos.mat').is_file())} cars_annos.mat",
            f"    {mark((root / 'car_ims').is_dir())} car_ims/",
        ]
        if split == "test" and _first_file(root, [f"{d}/cars_test_annos.mat".lstrip("/") for d in DEVKIT_DIRS]):
            lines.append(
                "  Note: cars_test_annos.mat has no labels; download cars_test_annos_withlabels.mat "
                "(published with the devkit) and put it beside devkit/."
            )
        return "\n".join(lines)
