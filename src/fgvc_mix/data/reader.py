"""The base of every real dataset reader: one constructor for all of them.

A reader subclass describes its release (``name``, ``expected_layout``, ``homepage``,
where under ``dataset.root`` it may be) and parses one split's annotations in
:meth:`DatasetReader.read`; the base checks the split, finds the release, appends the
expected tree and download page to every error about a missing folder or file, and
hands the parsed samples to :class:`~fgvc_mix.data.image_list.ImageListDataset`.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from .errors import DatasetError, LayoutError
from .image_list import Box, Point
from .reader_truth import ReaderTruth

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Annotations:
    """One split as parsed from the release: its samples, every class name, per-sample boxes and visible parts."""

    samples: list[tuple[Path, int]]
    classes: list[str]
    boxes: list[Box] | None = None
    parts: list[list[Point] | None] | None = None


class DatasetReader(ReaderTruth):
    """A dataset read from its official release under ``root``.

    Subclasses set the class attributes below and implement :meth:`read`; one that looks
    for its release in its own way overrides :meth:`locate` (Stanford Cars). A reader with
    options of its own (Aircraft's ``level``) takes them after these parameters, stores
    them, and then calls this constructor; :func:`~fgvc_mix.data.registry.build_dataset`
    lists the constructor's parameters as the accepted ``dataset.options``.
    """

    #: Whether the dataset has an official validation split (else the datamodule carves one).
    has_val: ClassVar[bool] = False
    #: The on-disk tree a user must provide, shown by errors about a missing root or file.
    expected_layout: ClassVar[str] = ""
    #: Where to download the dataset, shown with ``expected_layout``.
    homepage: ClassVar[str] = ""
    #: Folders under ``dataset.root`` that may hold the release ("" is the root itself) ...
    root_candidates: ClassVar[tuple[str, ...]] = ("",)
    #: ... and the file or folder that marks the right one.
    root_marker: ClassVar[str] = ""

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        skip_bad_images: bool = False,
        draft_size: int | None = None,
    ) -> None:
        check_split(split, dataset=self.name, has_val=self.has_val)
        self.split = split
        try:
            self.root = self.locate(root)
            parsed = self.read()
        except LayoutError as err:
            err.args = (f"{err}{self.layout_help()}",)
            raise
        super().__init__(
            parsed.samples,
            parsed.classes,
            transform,
            skip_bad_images,
            boxes=parsed.boxes,
            draft_size=draft_size,
            parts=parsed.parts,
        )

    def locate(self, root: str | Path) -> Path:
        """The folder of the release: the first of :attr:`root_candidates` holding :attr:`root_marker`."""
        return find_root(root, dataset=self.name, candidates=self.root_candidates, marker=self.root_marker)

    def read(self) -> Annotations:
        """Parse the annotations of ``self.split`` under ``self.root``."""
        raise NotImplementedError

    @classmethod
    def layout_help(cls) -> str:
        """The expected tree and download page, as lines to append to an error."""
        text = ""
        if cls.expected_layout:
            body = textwrap.indent(textwrap.dedent(cls.expected_layout).strip("\n"), "    ")
            text += f"\nExpected layout (set dataset.root=<its top folder or the parent>):\n{body}"
        if cls.homepage:
            text += f"\nDownload: {cls.homepage}"
        return text

    @classmethod
    def option_names(cls) -> list[str]:
        """The constructor's parameters a config sets under ``dataset.options``."""
        return [
            p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root", "split", "transform")
        ]


def check_split(split: str, *, dataset: str, has_val: bool) -> None:
    """Reject unknown splits, and ``val`` for datasets without an official one."""
    if split not in SPLITS:
        raise DatasetError(f"{dataset}: unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    if split == "val" and not has_val:
        raise DatasetError(
            f"{dataset} has no official validation split; ask for 'train' or 'test' "
            "(the datamodule carves its own validation split from train)."
        )


def check_use_val(split: str, use_val: bool, *, dataset: str, train_note: str) -> None:
    """Refuse ``val`` when ``use_val`` is off: its images are then part of train (``train_note`` says how)."""
    if split == "val" and not use_val:
        raise DatasetError(
            f"{dataset}: split 'val' needs dataset.options.use_val=true; with use_val=false the "
            f"official val images are part of train{train_note}."
        )


def check_root(root: str | Path, *, dataset: str, expected: str) -> Path:
    """Return ``root`` as a Path if it is an existing folder, else say how to set it."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise LayoutError(f"{dataset}: dataset root {path} {what}. Set dataset.root=<{expected}>.")
    return path


def find_root(root: str | Path, *, dataset: str, candidates: Sequence[str], marker: str) -> Path:
    """Return the first ``root/<candidate>`` holding ``marker`` (a file or folder).

    Lets users point ``dataset.root`` at the extracted folder or at its parent.
    """
    root = check_root(root, dataset=dataset, expected=f"the folder holding {marker}")
    tried = [root / c if c else root for c in candidates]
    for base in tried:
        if (base / marker).exists():
            return base
    looked = ", ".join(str(base / marker) for base in tried)
    raise LayoutError(
        f"{dataset}: cannot find {marker} under dataset root {root} (looked for {looked}). "
        f"Set dataset.root=<folder holding {marker}> or extract the official archive there."
    )
