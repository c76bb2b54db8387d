"""Converters from the original dataset formats to the lom_pyro HDF5 layout.

* :func:`convert_objects_room` — DeepMind multi-object-datasets Objects Room TFRecords
  (``train`` K=7, ``six_objects`` / ``identical_color`` K=10, ``empty_room`` K=4).
* :func:`convert_clevr6` — CLEVR-with-masks TFRecords filtered to CLEVR6.
* :func:`convert_shapestacks` — the ShapeStacks image tree (``recordings/``, ``splits/``).

All three stream the source in chunks (memory does not grow with the file), write to a
temporary file next to ``dst`` and rename it onto ``dst`` only when everything has been
converted: a failed or interrupted run leaves an existing ``dst`` byte-identical.
Bad input raises :class:`~lom_pyro.data.errors.DataError` naming the file and record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from lom_pyro.data._image import CLEVR_CROP, center_crop_box, crop_resize_image, crop_resize_masks
from lom_pyro.data.errors import DataError, TFRecordError
from lom_pyro.data.h5 import H5Writer
from lom_pyro.data.tfrecord import Feature, _KindError, iter_examples

__all__ = [
    "CLEVR6_MAX_VISIBILITY",
    "CLEVR_FACTOR_NAMES",
    "OBJECTS_ROOM_VARIANTS",
    "SHAPESTACKS_NUM_CHANNELS",
    "SHAPESTACKS_SCENE_FACTOR_NAMES",
    "ConversionSummary",
    "convert_clevr6",
    "convert_objects_room",
    "convert_shapestacks",
]

PathLike: TypeAlias = str | os.PathLike[str]

#: Objects Room variant -> K (mask channels); channels 0–3 are sky, floor and two walls.
OBJECTS_ROOM_VARIANTS: dict[str, int] = {"train": 7, "six_objects": 10, "identical_color": 10, "empty_room": 4}
_OBJECTS_ROOM_FILES = {"train": "objects_room_train.tfrecords"} | {
    v: f"objects_room_test_{v}.tfrecords" for v in ("six_objects", "identical_color", "empty_room")
}
#: Factors kept for CLEVR6, in this order along the last axis of ``factors``.
CLEVR_FACTOR_NAMES = ("x", "y", "z", "rotation", "size", "material", "shape", "color", "visibility")
#: CLEVR6 rule: keep a scene iff ``sum(visibility) <= 7`` over its 11 entities, i.e. the
#: (always visible) background plus at most 6 visible objects.
CLEVR6_MAX_VISIBILITY = 7.0
_CLEVR_ENTITIES, _CLEVR_HW, _CLEVR6_K = 11, (240, 320), 7
SHAPESTACKS_NUM_CHANNELS = 9
SHAPESTACKS_SCENE_FACTOR_NAMES = ("height", "stable", "camera")
_SHAPESTACKS_CROP = 196
_SHAPESTACKS_SPLITS = (("train", "train"), ("eval", "val"), ("test", "test"))


@dataclass(slots=True)
class ConversionSummary:
    """What a conversion wrote: scenes per split, source records read and filtered out."""

    dst: Path
    counts: dict[str, int] = field(default_factory=dict)
    records_read: int = 0
    records_skipped: int = 0

    def __str__(self) -> str:
        splits = ", ".join(f"{k}: {v}" for k, v in self.counts.items())
        skipped = f", {self.records_skipped} filtered out" if self.records_skipped else ""
        return f"wrote {self.dst} ({splits}) from {self.records_read} source records{skipped}"


# ----------------------------------------------------------------------------- shared helpers


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive number of records, got {limit}")


def _resolve_tfrecord(src: PathLike, default_name: str) -> Path:
    """``src`` itself, or the dataset's standard file name inside the folder ``src``."""
    path = Path(src)
    if path.is_dir():
        path = path / default_name
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a TFRecord file ({default_name}).")
    return path


def _feature(
    features: dict[str, Feature], name: str, size: int, kind: Literal["uint8", "float32"], where: str
) -> np.ndarray:
    """Feature ``name`` decoded as ``kind``, checked to hold exactly ``size`` values."""
    feat = features.get(name)
    if feat is None:
        raise DataError(f"{where}: feature '{name}' is missing; expected {size} {kind} values.")
    try:
        values = feat.uint8() if kind == "uint8" else feat.float32()
    except _KindError as err:
        raise DataError(f"{where}: feature '{name}' {err}.") from None
    except TFRecordError as err:
        raise DataError(f"{where}: feature '{name}' could not be decoded ({err}).") from None
    if values.size != size:
        raise DataError(f"{where}: feature '{name}' has {values.size} values; expected {size}.")
    return values


def _binary_255(mask: np.ndarray, where: str, name: str = "mask") -> np.ndarray:
    """{0, 255} uint8 -> {0, 1} uint8, refusing any other value."""
    ok = (mask == 0) | (mask == 255)
    if not ok.all():
        bad = int(mask[~ok].flat[0])
        raise DataError(f"{where}: feature '{name}' holds the value {bad}; expected only 0 and 255.")
    return (mask >> 7).astype(np.uint8)


class _Batcher:
    """Collect scenes per split and hand them to the writer ``chunk_size`` at a time."""

    def __init__(self, writer: H5Writer, chunk_size: int) -> None:
        self.writer, self.chunk_size = writer, chunk_size
        self.split: str | None = None
        self.rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = []

    def add(
        self,
        split: str,
        image: np.ndarray,
        mask: np.ndarray,
        factors: np.ndarray | None = None,
        scene_factors: np.ndarray | None = None,
    ) -> None:
        if split != self.split or len(self.rows) >= self.chunk_size:
            self.flush()
            self.split = split
        self.rows.append((image, mask, factors, scene_factors))

    def flush(self) -> None:
        if self.rows and self.split is not None:
            images, masks, factors, scene = zip(*self.rows, strict=True)
            self.writer.append(
                np.stack(images), np.stack(masks),
                None if factors[0] is None else np.stack(factors),
                scene_factors=None if scene[0] is None else np.stack(scene), split=self.split,
            )  # fmt: skip
        self.rows = []


def _convert_records(
    src: Path,
    writer: H5Writer,
    decode: Callable[[dict[str, Feature], str], tuple[np.ndarray, ...] | None],
    *,
    split: str,
    test_size: int,
    limit: int | None,
    chunk_size: int,
    progress: bool,
    gzip: bool | None,
    desc: str,
) -> ConversionSummary:
    summary = ConversionSummary(writer.path)
    batcher = _Batcher(writer, chunk_size)
    with tqdm(total=limit, desc=desc, unit=" records", disable=not progress, dynamic_ncols=True) as bar:
        for index, features in iter_examples(src, gzip=gzip):
            if limit is not None and index >= limit:
                break
            summary.records_read += 1
            bar.update()
            scene = decode(features, f"{src}: record {index}")
            if scene is None:
                summary.records_skipped += 1
                continue
            target = "test" if sum(summary.counts.values()) < test_size else split
            summary.counts[target] = summary.counts.get(target, 0) + 1
            batcher.add(target, *scene)
    batcher.flush()
    if not summary.counts:
        raise DataError(
            f"{src}: no scene to convert ({summary.records_read} records read, {summary.records_skipped} filtered out)."
        )
    writer.set_attrs(
        records_read=summary.records_read, records_skipped=summary.records_skipped, source=os.fspath(src)
    )
    return summary


# ----------------------------------------------------------------------------- Objects Room


def convert_objects_room(
    src: PathLike,
    dst: PathLike,
    variant: str = "train",
    limit: int | None = None,
    *,
    split: str | None = None,
    test_size: int = 0,
    chunk_size: int = 256,
    progress: bool = True,
    gzip: bool | None = None,
) -> ConversionSummary:
    """Convert an Objects Room TFRecord file to lom_pyro HDF5.

    Source records hold ``image`` [64, 64, 3] and ``mask`` [K, 64, 64, 1] uint8 ({0, 255}),
    each a bytes_list with one 1-byte entry per value. The output keeps all K channels;
    channels 0–3 (sky, floor, walls) are the background.

    :param src: the ``.tfrecords`` file, or a folder holding the standard file name
        (``objects_room_train.tfrecords``, ``objects_room_test_<variant>.tfrecords``).
    :param dst: the ``.h5`` file to write (replaced atomically on success).
    :param variant: ``train`` (K=7), ``six_objects`` (K=10), ``identical_color`` (K=10)
        or ``empty_room`` (K=4).
    :param limit: convert only the first ``limit`` records.
    :param split: output group (default ``train`` for the train variant, else ``test``).
    :param test_size: send the first ``test_size`` scenes to ``test`` instead.
    :param gzip: force GZIP on/off; ``None`` auto-detects.
    """
    if variant not in OBJECTS_ROOM_VARIANTS:
        raise ValueError(
            f"unknown Objects Room variant {variant!r}; expected one of {', '.join(OBJECTS_ROOM_VARIANTS)}"
        )
    _check_limit(limit)
    k = OBJECTS_ROOM_VARIANTS[variant]
    path = _resolve_tfrecord(src, _OBJECTS_ROOM_FILES[variant])

    def decode(features: dict[str, Feature], where: str) -> tuple[np.ndarray, ...]:
        image = _feature(features, "image", 64 * 64 * 3, "uint8", where).reshape(64, 64, 3)
        mask = _feature(features, "mask", k * 64 * 64, "uint8", where).reshape(k, 64, 64)
        return image, _binary_255(mask, where)

    with H5Writer(
        dst, dataset="objects_room", background_channels=(0, 1, 2, 3),
        preprocessing="none: 64x64 images and masks as in the source; masks {0,255} -> {0,1}",
        attrs={"variant": variant},
    ) as writer:  # fmt: skip
        return _convert_records(
            path, writer, decode, split=split or ("train" if variant == "train" else "test"),
            test_size=test_size, limit=limit, chunk_size=chunk_size, progress=progress, gzip=gzip,
            desc=f"objects_room/{variant}",
        )  # fmt: skip


# ----------------------------------------------------------------------------- CLEVR6


def convert_clevr6(
    src: PathLike,
    dst: PathLike,
    size: int = 96,
    limit: int | None = None,
    *,
    split: str = "train",
    test_size: int = 0,
    chunk_size: int = 32,
    progress: bool = True,
    gzip: bool | None = None,
) -> ConversionSummary:
    """Convert CLEVR-with-masks TFRecords to CLEVR6 in lom_pyro HDF5.

    * **Filter**: keep a scene iff ``sum(visibility) <= 7`` over its 11 entities
      (background + at most 6 visible objects).
    * **Channels** (K = 7): channel 0 is the background (entity 0); channels 1.. are the
      visible objects (visibility > 0.5) in source order; unused channels are all zero.
      Entities with visibility 0 must have empty masks (else :class:`DataError`).
    * **Geometry**: crop rows 29:221, cols 64:256 (192×192), resize to ``size`` — PIL
      bilinear for images, PIL nearest for masks (so masks stay one-hot).
    * **Factors** (N, 7, 9) float32: ``x y z rotation size material shape color
      visibility`` per channel, packed like the masks (zeros for unused channels); the
      categorical codes keep the source's 1-based values.

    :param size: 96 (EfficientMORL, the paper) or 64.
    :param limit: read only the first ``limit`` source records (before filtering).
    :param split: output group; ``test_size`` first kept scenes go to ``test`` instead.
    """
    if size not in (64, 96):
        raise ValueError(f"CLEVR6 size must be 64 or 96, got {size}")
    _check_limit(limit)
    path = _resolve_tfrecord(src, "clevr_with_masks_train.tfrecords")
    e, (h, w) = _CLEVR_ENTITIES, _CLEVR_HW

    def decode(features: dict[str, Feature], where: str) -> tuple[np.ndarray, ...] | None:
        visibility = _feature(features, "visibility", e, "float32", where)
        if visibility.sum() > CLEVR6_MAX_VISIBILITY:
            return None
        image = _feature(features, "image", h * w * 3, "uint8", where).reshape(h, w, 3)
        mask = _binary_255(_feature(features, "mask", e * h * w, "uint8", where).reshape(e, h, w), where)
        objects = [j for j in range(1, e) if visibility[j] > 0.5]
        if len(objects) > _CLEVR6_K - 1:
            raise DataError(
                f"{where}: {len(objects)} visible objects pass the sum(visibility) <= 7 rule; "
                "expected the background entity to be visible and at most 6 objects."
            )
        for j in range(1, e):
            if j not in objects and mask[j].any():
                raise DataError(
                    f"{where}: entity {j} has visibility {visibility[j]:g} but a non-empty mask; "
                    "expected an empty mask."
                )
        keep = [0, *objects]
        values = [_feature(features, n, e, "float32", where) for n in ("x", "y", "z", "rotation")]
        values += [
            _feature(features, n, e, "uint8", where).astype(np.float32) for n in ("size", "material", "shape", "color")
        ]
        table = np.stack([*values, visibility], axis=-1)  # (11, 9)
        masks = np.zeros((_CLEVR6_K, h, w), dtype=np.uint8)
        masks[: len(keep)] = mask[keep]
        factors = np.zeros((_CLEVR6_K, len(CLEVR_FACTOR_NAMES)), dtype=np.float32)
        factors[: len(keep)] = table[keep]
        return crop_resize_image(image, CLEVR_CROP, size), crop_resize_masks(masks, CLEVR_CROP, size), factors

    with H5Writer(
        dst, dataset="clevr6", background_channels=(0,), factor_names=CLEVR_FACTOR_NAMES,
        preprocessing=(
            f"CLEVR6 filter sum(visibility) <= 7; channel 0 background, then visible objects in source order "
            f"(K=7); crop rows 29:221 cols 64:256; resize to {size} (images PIL bilinear, masks PIL nearest)"
        ),
        attrs={"filter": "sum(visibility) <= 7", "image_size": size},
    ) as writer:  # fmt: skip
        return _convert_records(
            path, writer, decode, split=split, test_size=test_size, limit=limit,
            chunk_size=chunk_size, progress=progress, gzip=gzip, desc=f"clevr6/{size}px",
        )  # fmt: skip


# ----------------------------------------------------------------------------- ShapeStacks

_CAMERA = re.compile(r"cam_(\d+)")
_HEIGHT = re.compile(r"(?:^|-)h=(\d+)(?:-|$)")


def _scenario_factors(scenario: str, where: str) -> tuple[int, float]:
    """``(height, stable)`` from a name like ``env_ccs-hard-h=4-vcom=0-vpsf=0-v=60``."""
    m = _HEIGHT.search(scenario)
    if m is None:
        raise DataError(
            f"{where}: scenario '{scenario}' has no 'h=<height>' part; expected a ShapeStacks scenario name."
        )
    parts = scenario.split("-")
    stable = "vcom=0" in parts and "vpsf=0" in parts
    return int(m.group(1)), float(stable)


def _open_png(path: Path, what: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; expected the {what}.") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as an image ({err}); expected the {what} as PNG data.") from None
    return img


def _find_iseg(root: Path, scenario: str, rgb: Path, where: str) -> Path:
    """The instance map for ``rgb``: same name with rgb->iseg and .png->.map next to it, else
    any ``iseg-*-cam_<k>-mono-0.map`` of that camera in ``recordings/<s>/`` or ``iseg/<s>/``."""
    same = rgb.with_name("iseg" + rgb.name[3:]).with_suffix(".map")
    if same.is_file():
        return same
    cam = _CAMERA.search(rgb.name)
    if cam is not None:
        for folder in (rgb.parent, root / "iseg" / scenario):
            found = sorted(folder.glob(f"iseg-*-cam_{cam.group(1)}-mono-0.map")) if folder.is_dir() else []
            if found:
                return found[0]
    raise DataError(
        f"{rgb}: has no instance map; expected {same.name} or iseg-*-cam_K-mono-0.map for its camera ({where})."
    )


def _shapestacks_labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A ``.map`` file (PNG data) -> (H, W) uint8 labels k, stored there as 32·k."""
    img = _open_png(path, "instance map")
    arr = np.asarray(img)
    if img.mode == "P":  # palette indices are not the stored values
        arr = np.asarray(img.convert("RGB"))
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.shape != shape:
        raise DataError(
            f"{path}: instance map is {arr.shape[1]}×{arr.shape[0]}; expected {shape[1]}×{shape[0]} like its RGB image."
        )
    arr = arr.astype(np.int64)
    bad = (arr % 32 != 0) | (arr // 32 >= SHAPESTACKS_NUM_CHANNELS)
    if bad.any():
        raise DataError(
            f"{path}: pixel value {int(arr[bad].flat[0])} is not 32·k for a label k in 0..8; "
            "expected a ShapeStacks instance map."
        )
    return (arr // 32).astype(np.uint8)


def _shapestacks_items(
    root: Path, split_dir: Path, list_name: str, limit: int | None
) -> Iterator[tuple[Path, Path, str, str]]:
    """``(rgb, iseg, scenario, where)`` for the images of one split file, in listed order."""
    list_file = split_dir / f"{list_name}.txt"
    if not list_file.is_file():
        raise DataError(
            f"{list_file}: the split file is missing; "
            "expected splits/<split>/{train,eval,test}.txt listing one scenario per line."
        )
    scenarios = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    count = 0
    for line_no, scenario in enumerate(scenarios, start=1):
        where = f"{list_file}, line {line_no}"
        folder = root / "recordings" / scenario
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder; expected the recordings of scenario '{scenario}' ({where}).")
        rgbs = sorted(folder.glob("rgb-*-mono-0.png"))
        if not rgbs:
            raise DataError(
                f"{folder}: holds no rgb-*-mono-0.png image; expected the renderings of '{scenario}' ({where})."
            )
        for rgb in rgbs:
            if limit is not None and count >= limit:
                return
            yield rgb, _find_iseg(root, scenario, rgb, where), scenario, where
            count += 1


def convert_shapestacks(
    root: PathLike,
    dst: PathLike,
    split: str = "default",
    limit: int | None = None,
    *,
    image_size: int = 64,
    chunk_size: int = 256,
    progress: bool = True,
) -> ConversionSummary:
    """Convert the ShapeStacks image tree to lom_pyro HDF5 (groups ``train``, ``val``, ``test``).

    ``root/splits/<split>/{train,eval,test}.txt`` list scenarios; each scenario folder
    ``root/recordings/<scenario>/`` holds RGB renderings ``rgb-...-cam_K-mono-0.png``
    (224×224) and instance maps ``iseg-...-cam_K-mono-0.map`` (PNG data, label k stored as
    32·k; 0 background, 1–6 blocks). Maps are also looked up in ``root/iseg/<scenario>/``.

    Each rendering: centre crop 196, resize to ``image_size`` (PIL bilinear for the
    image, PIL nearest for the label map), labels one-hot into K = 9 channels (channel 0
    background, unused channels zero). Per-scene factors (N, 3) ``height`` (h=2..6 from
    the name), ``stable`` (1 iff ``vcom=0`` and ``vpsf=0``) and ``camera``.

    :param split: the folder under ``splits/`` (``default``, ``blocks_all``, ``ccs_all``...).
    :param limit: convert only the first ``limit`` images of each split file.
    """
    _check_limit(limit)
    root = Path(root)
    split_dir = root / "splits" / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: no such folder; expected a ShapeStacks root with splits/{split}/.")
    with H5Writer(
        dst, dataset="shapestacks", background_channels=(0,), scene_factor_names=SHAPESTACKS_SCENE_FACTOR_NAMES,
        preprocessing=(
            f"centre crop 196; resize to {image_size} (images PIL bilinear, label maps PIL nearest); "
            "labels 32k -> one-hot channel k (K=9)"
        ),
        attrs={"source": os.fspath(root), "split_name": split},
    ) as writer:  # fmt: skip
        summary = ConversionSummary(writer.path)
        batcher = _Batcher(writer, chunk_size)
        for list_name, group in _SHAPESTACKS_SPLITS:
            items = _shapestacks_items(root, split_dir, list_name, limit)
            for rgb, iseg, scenario, where in tqdm(
                items, desc=f"shapestacks/{group}", unit=" images", disable=not progress
            ):
                image = np.asarray(_open_png(rgb, "RGB rendering").convert("RGB"))
                hh, ww = image.shape[:2]
                if min(hh, ww) < _SHAPESTACKS_CROP:
                    raise DataError(
                        f"{rgb}: image is {ww}×{hh}; expected at least 196×196 (ShapeStacks renders 224×224)."
                    )
                labels = _shapestacks_labels(iseg, (hh, ww))
                box = center_crop_box(hh, ww, _SHAPESTACKS_CROP)
                small = crop_resize_masks(labels, box, image_size)
                onehot = (
                    small[None] == np.arange(SHAPESTACKS_NUM_CHANNELS, dtype=np.uint8)[:, None, None]
                ).astype(np.uint8)
                height, stable = _scenario_factors(scenario, where)
                cam = _CAMERA.search(rgb.name)
                camera = float(cam.group(1)) if cam else -1.0
                scene = np.asarray([height, stable, camera], dtype=np.float32)
                summary.records_read += 1
                summary.counts[group] = summary.counts.get(group, 0) + 1
                batcher.add(group, crop_resize_image(image, box, image_size), onehot, scene_factors=scene)
        batcher.flush()
        if not summary.counts:
            raise DataError(f"{split_dir}: the split files list no scenario; expected at least one.")
        writer.set_attrs(records_read=summary.records_read)
        return summary
