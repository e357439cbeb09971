"""CUB-200-2011 (Wah, Branson, Welinder, Perona & Belongie, Caltech-UCSD Birds-200-2011,
CNS-TR-2011-001, 2011).

11,788 photographs of 200 bird species: 5,994 train / 5,794 test (``train_test_split.txt``);
no official validation split. The layout of the official ``CUB_200_2011.tgz`` is
:attr:`CUB200.expected_layout`; ``dataset.root`` may point at ``CUB_200_2011/`` or at its parent.
The files are parsed by :mod:`fgvc_mix.data.cub_style`, which NABirds shares.
"""

from __future__ import annotations

from .cub_style import CubStyleDataset


def pretty_cub_name(name: str) -> str:
    """``001.Black_footed_Albatross`` → ``Black footed Albatross``."""
    return name.split(".", 1)[-1].replace("_", " ")


class CUB200(CubStyleDataset):
    """CUB-200-2011 birds; ``classes`` are the folder names (``001.Black_footed_Albatross``).

    ``display_names`` holds readable names; ``boxes`` the per-sample ``(x, y, w, h)``
    when ``bounding_boxes.txt`` is present (else None).
    """

    name = "cub"
    homepage = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
    expected_layout = """
        CUB_200_2011/
            images.txt               <image id> <class folder>/<file>.jpg
            image_class_labels.txt   <image id> <class id, 1-based>
            train_test_split.txt     <image id> <1 = train, 0 = test>
            classes.txt              <class id> 001.Black_footed_Albatross
            bounding_boxes.txt       <image id> <x> <y> <width> <height>   (optional)
            images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg ...
    """
    root_candidates = ("", "CUB_200_2011")

    @property
    def display_names(self) -> list[str]:
        return [pretty_cub_name(c) for c in self.classes]
