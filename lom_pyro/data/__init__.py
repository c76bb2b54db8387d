"""Datasets: original-format converters, the HDF5 layout, torch datasets, presets.

No Pyro here (plain numpy, h5py, PIL and torch). See ``docs/data.md``.
"""

from lom_pyro.data.convert import (
    CLEVR6_MAX_VISIBILITY,
    CLEVR_FACTOR_NAMES,
    OBJECTS_ROOM_VARIANTS,
    ConversionSummary,
    convert_clevr6,
    convert_objects_room,
    convert_shapestacks,
)
from lom_pyro.data.dataset import EMORL_RANGE, GENESIS_RANGE, SceneDataset
from lom_pyro.data.errors import DataError, TFRecordError
from lom_pyro.data.h5 import H5SplitReader, H5Writer, SplitInfo, list_splits, read_split, write_procedural
from lom_pyro.data.presets import DATASET_PRESETS, DatasetPreset, get_preset
from lom_pyro.data.procedural import ProceduralDataset, ProceduralScenes, generate
from lom_pyro.data.tfrecord import iter_examples, iter_records, parse_example, write_tfrecord

__all__ = [
    "CLEVR6_MAX_VISIBILITY",
    "CLEVR_FACTOR_NAMES",
    "DATASET_PRESETS",
    "EMORL_RANGE",
    "GENESIS_RANGE",
    "OBJECTS_ROOM_VARIANTS",
    "ConversionSummary",
    "DataError",
    "DatasetPreset",
    "H5SplitReader",
    "H5Writer",
    "ProceduralDataset",
    "ProceduralScenes",
    "SceneDataset",
    "SplitInfo",
    "TFRecordError",
    "convert_clevr6",
    "convert_objects_room",
    "convert_shapestacks",
    "generate",
    "get_preset",
    "iter_examples",
    "iter_records",
    "list_splits",
    "parse_example",
    "read_split",
    "write_procedural",
    "write_tfrecord",
]
