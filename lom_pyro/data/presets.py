"""Per-dataset constants: image size, number of mask channels K, background channels.

>>> DATASET_PRESETS["objects_room"].num_slots
7
>>> get_preset("clevr6").with_image_size(64).image_size
64
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["DATASET_PRESETS", "DatasetPreset", "get_preset"]


@dataclass(frozen=True, slots=True)
class DatasetPreset:
    """What a model and the metrics need to know about a dataset.

    :ivar name: key in :data:`DATASET_PRESETS` (and the HDF5 ``dataset`` attribute).
    :ivar image_size: images are ``image_size``×``image_size`` RGB.
    :ivar num_slots: K, the number of mask channels (and the model's slots) per scene.
    :ivar background_channels: mask channels that ARI-FG ignores.
    :ivar converter: the ``lom-pyro convert`` sub-command that produces the HDF5 file.
    """

    name: str
    image_size: int
    num_slots: int
    background_channels: tuple[int, ...]
    converter: str

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.num_slots <= 0:
            raise ValueError(f"preset {self.name!r}: image_size and num_slots must be positive")
        if any(not 0 <= c < self.num_slots for c in self.background_channels):
            raise ValueError(
                f"preset {self.name!r}: background_channels {self.background_channels} "
                f"must lie in [0, {self.num_slots})"
            )

    def with_image_size(self, image_size: int) -> DatasetPreset:
        """The same preset at another resolution (e.g. CLEVR6 at 64 instead of 96)."""
        return dataclasses.replace(self, image_size=image_size)


#: The paper's datasets (§4, appendix A.4.1). Objects Room mask channels 0–3 are sky,
#: floor and the two wall halves; CLEVR6 and ShapeStacks have one background channel.
DATASET_PRESETS: dict[str, DatasetPreset] = {
    "objects_room": DatasetPreset("objects_room", 64, 7, (0, 1, 2, 3), "objects-room"),
    "clevr6": DatasetPreset("clevr6", 96, 7, (0,), "clevr6"),
    "clevr6_64": DatasetPreset("clevr6_64", 64, 7, (0,), "clevr6"),
    "shapestacks": DatasetPreset("shapestacks", 64, 9, (0,), "shapestacks"),
}


def get_preset(name: str) -> DatasetPreset:
    """Look a preset up by name, with the list of known names in the error."""
    try:
        return DATASET_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset preset {name!r}; known: {', '.join(sorted(DATASET_PRESETS))}") from None
