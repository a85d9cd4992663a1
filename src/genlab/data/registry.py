"""The one list of genlab's image data sets: their torchvision class and the names of their classes.

Every place that names a class (scatter legends, the latent explorer, interpolation labels) reads it from here,
so a data set added here is named the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageDataset:
    torchvision_class: str  # the class in torchvision.datasets (also its folder under the data root)
    class_names: tuple[str, ...]


DATASETS: dict[str, ImageDataset] = {
    "mnist": ImageDataset("MNIST", tuple(str(d) for d in range(10))),
    "fashion_mnist": ImageDataset(
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def dataset_info(name: str) -> ImageDataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def class_names(name: str) -> list[str]:
    """The class names of data set `name`, indexed by label."""
    return list(dataset_info(name).class_names)


def class_index(name: str, cls: str) -> int:
    """The label of class `cls` of data set `name`, given as its label ("9") or its name ("Ankle boot",
    case-insensitive)."""
    names = class_names(name)
    if cls.strip().isdigit() and int(cls) < len(names):
        return int(cls)
    lowered = [n.lower() for n in names]
    if cls.strip().lower() in lowered:
        return lowered.index(cls.strip().lower())
    raise ValueError(f"{cls!r} is not a class of {name}: give a label 0-{len(names) - 1} or one of {', '.join(names)}")
