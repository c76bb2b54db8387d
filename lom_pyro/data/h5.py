"""The lom_pyro HDF5 layout: a streaming writer and a validating reader.

One group per split (``train``, ``val``, ``test``), each holding

=================  =======  ==============  ==============================================
key                dtype    shape           meaning
=================  =======  ==============  ==============================================
``images``         uint8    (N, H, W, 3)    RGB, 0–255
``masks``          uint8    (N, K, H, W)    one-hot instance masks, values {0, 1}
``factors``        float32  (N, K, F)       per-channel factors (optional)
``scene_factors``  float32  (N, G)          per-scene factors (optional)
=================  =======  ==============  ==============================================

File attributes: ``format`` (``"lom_pyro.h5"``), ``format_version``, ``dataset``,
``background_channels`` (ints), ``factor_names`` (F strings), ``scene_factor_names``
(G strings), ``preprocessing`` (free text), plus converter provenance (``source``...).
A split group may override any of them with its own attribute.

The reader also opens EfficientMORL files directly (``imgs`` (N, H, W, 3) 0–255,
``masks`` (N, K, H, W, 1) {0, 255}, ``factors``) and converts them on the fly;
CLEVR files there are uncropped, so pass ``dataset="clevr6"`` to crop and resize.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.h5"
>>> images = np.zeros((2, 4, 4, 3), np.uint8)             # (N, H, W, 3)
>>> masks = np.zeros((2, 3, 4, 4), np.uint8); masks[:, 0] = 1  # (N, K, H, W): all background
>>> with H5Writer(path, dataset="demo", background_channels=(0,)) as w:
...     w.append(images, masks, split="train")
>>> read_split(path, "train")["masks"].shape
(2, 3, 4, 4)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias

import h5py
import numpy as np

from lom_pyro.data._image import CLEVR_CROP, crop_resize_image, crop_resize_masks
from lom_pyro.data.errors import DataError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SPLITS",
    "H5SplitReader",
    "H5Writer",
    "SplitInfo",
    "list_splits",
    "read_split",
    "write_procedural",
]

PathLike: TypeAlias = str | os.PathLike[str]

FORMAT = "lom_pyro.h5"
FORMAT_VERSION = 1
#: Conventional split names; any group name works.
SPLITS = ("train", "val", "test")
#: Datasets whose EfficientMORL files store uncropped 240×320 CLEVR frames.
_CLEVR_NAMES = frozenset({"clevr", "clevr6", "clevr6_64", "clevr10", "clevr_with_masks"})


def _str_list(values: Sequence[str]) -> np.ndarray:
    return np.asarray(list(values), dtype=h5py.string_dtype())


# ----------------------------------------------------------------------------- writer


class H5Writer:
    """Stream scenes into a new lom_pyro HDF5 file, atomically.

    Data goes to a temporary file next to ``path``; :meth:`close` (or leaving the
    ``with`` block normally) renames it onto ``path`` with :func:`os.replace`. An
    exception inside the block, or :meth:`abort`, deletes the temporary file, so an
    existing ``path`` is never touched by a failed run.

    :param path: destination ``.h5`` file.
    :param dataset: name stored in the ``dataset`` attribute (e.g. ``"objects_room"``).
    :param background_channels: mask channels that are background (for ARI-FG).
    :param factor_names: names of the F per-channel factors, when ``factors`` are given.
    :param scene_factor_names: names of the G per-scene factors, when ``scene_factors`` are given.
    :param preprocessing: free text saying how the source was transformed.
    :param attrs: more file attributes (provenance: source file, filtering rule, ...).
    :param compression: h5py compression filter (``"gzip"``, ``"lzf"`` or ``None``).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        dataset: str,
        background_channels: Sequence[int],
        factor_names: Sequence[str] = (),
        scene_factor_names: Sequence[str] = (),
        preprocessing: str = "",
        attrs: Mapping[str, Any] | None = None,
        compression: str | None = "gzip",
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory; expected the path of an .h5 file to write.")
        self.factor_names = tuple(factor_names)
        self.scene_factor_names = tuple(scene_factor_names)
        self._compression = compression
        if not self.path.parent.is_dir():
            raise DataError(f"{self.path}: the folder {self.path.parent} does not exist; create it first.")
        # hidden sibling, so os.replace stays on one file system; "w-" refuses to clobber
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        self._file: h5py.File | None = h5py.File(self._tmp, "w-")
        self.counts: dict[str, int] = {}
        try:
            self.set_attrs(
                format=FORMAT, format_version=FORMAT_VERSION, dataset=dataset,
                background_channels=np.asarray(list(background_channels), dtype=np.int64),
                factor_names=_str_list(self.factor_names), scene_factor_names=_str_list(self.scene_factor_names),
                preprocessing=preprocessing, **(attrs or {}),
            )  # fmt: skip
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> H5Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _fail(self, split: str, what: str) -> DataError:
        return DataError(f"{self.path}: cannot append to split '{split}': {what}.")

    def _dataset(self, group: h5py.Group, key: str, item_shape: tuple[int, ...], dtype: str) -> h5py.Dataset:
        if key not in group:
            chunk = (1, *item_shape) if len(item_shape) > 1 else (1024, *item_shape)
            group.create_dataset(
                key, shape=(0, *item_shape), maxshape=(None, *item_shape), dtype=dtype,
                chunks=chunk, compression=self._compression,
            )  # fmt: skip
        return group[key]

    def append(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        factors: np.ndarray | None = None,
        *,
        scene_factors: np.ndarray | None = None,
        split: str = "train",
    ) -> None:
        """Append a chunk of B scenes to ``split``.

        :param images: (B, H, W, 3) uint8.
        :param masks: (B, K, H, W) uint8 with values in {0, 1}.
        :param factors: (B, K, F) float32, required iff ``factor_names`` was given.
        :param scene_factors: (B, G) float32, required iff ``scene_factor_names`` was given.
        :param split: group name.
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        images, masks = np.asarray(images), np.asarray(masks)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise self._fail(split, f"images must be uint8 (B, H, W, 3), got {images.dtype} {images.shape}")
        b, h, w, _ = images.shape
        if masks.dtype != np.uint8 or masks.ndim != 4 or masks.shape[0] != b or masks.shape[2:] != (h, w):
            raise self._fail(
                split, f"masks must be uint8 (B, K, H, W) = ({b}, K, {h}, {w}), got {masks.dtype} {masks.shape}"
            )
        if masks.size and masks.max() > 1:
            raise self._fail(split, "masks must hold only 0 and 1")
        k = masks.shape[1]
        extra: dict[str, np.ndarray] = {}
        for key, value, names, shape in (
            ("factors", factors, self.factor_names, (b, k, len(self.factor_names))),
            ("scene_factors", scene_factors, self.scene_factor_names, (b, len(self.scene_factor_names))),
        ):
            if bool(names) != (value is not None):
                raise self._fail(split, f"{key} must be given exactly when {key[:-1]}_names are")
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                if value.shape != shape:
                    raise self._fail(split, f"{key} must have shape {shape}, got {value.shape}")
                extra[key] = value
        group = self._file.require_group(split)
        arrays = {"images": images, "masks": masks, **extra}
        for key, value in arrays.items():
            dset = self._dataset(group, key, value.shape[1:], "float32" if value.dtype == np.float32 else "uint8")
            if dset.shape[1:] != value.shape[1:]:
                raise self._fail(split, f"{key} items have shape {value.shape[1:]}, earlier ones {dset.shape[1:]}")
        n = self.counts.get(split, 0)
        for key, value in arrays.items():
            dset = group[key]
            dset.resize(n + b, axis=0)
            dset[n : n + b] = value
        self.counts[split] = n + b

    def set_attrs(self, **attrs: Any) -> None:
        """Add file attributes (e.g. counts known only at the end of a conversion)."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        for key, value in attrs.items():
            self._file.attrs[key] = value

    def close(self) -> Path:
        """Finish the file and move it onto ``path``; returns ``path``."""
        if self._file is not None:
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written; ``path`` is left as it was."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
                self._tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class SplitInfo:
    """What one split of an HDF5 file holds (after any on-the-fly conversion).

    :ivar layout: ``"lom"`` for this module's layout, ``"emorl"`` for EfficientMORL's.
    :ivar image_size: ``(H, W)`` of the images the reader returns.
    :ivar num_channels: K, mask channels per scene.
    :ivar factor_names: F names, or ``None`` when the split has no factors.
    """

    path: str
    split: str
    layout: Literal["lom", "emorl"]
    dataset: str
    num_scenes: int
    image_size: tuple[int, int]
    num_channels: int
    background_channels: tuple[int, ...]
    factor_names: tuple[str, ...] | None
    scene_factor_names: tuple[str, ...] | None
    preprocessing: str


def _attr(file: h5py.File, group: h5py.Group, key: str, default: Any) -> Any:
    if key in group.attrs:
        return group.attrs[key]
    return file.attrs.get(key, default)


def _names(value: Any) -> tuple[str, ...]:
    """An HDF5 string-array attribute as a tuple of str (h5py may hand back bytes)."""
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value))


class H5SplitReader:
    """Read one split of a lom_pyro or EfficientMORL HDF5 file, validated on open.

    Whatever the layout, :meth:`read` returns ``images`` (B, H, W, 3) uint8, ``masks``
    (B, K, H, W) uint8 {0, 1} and, when present, ``factors`` (B, K, F) float32 and
    ``scene_factors`` (B, G) float32. EfficientMORL images that are not uint8 are checked
    for NaN and range [0, 255] as they are read.

    :param path: the ``.h5`` file.
    :param split: group name.
    :param dataset: overrides the ``dataset`` attribute; for EfficientMORL files a CLEVR
        name (``"clevr6"``...) applies the CLEVR crop (rows 29:221, cols 64:256) and a
        resize to ``image_size``.
    :param image_size: output size for cropped CLEVR (default 96, EfficientMORL's
        ``clevr-small``); must match the stored size otherwise.
    :param background_channels: overrides the stored attribute (EfficientMORL default ``(0,)``).
    :raises DataError: naming the file and key when the file does not have the layout.
    """

    def __init__(
        self,
        path: PathLike,
        split: str = "train",
        *,
        dataset: str | None = None,
        image_size: int | None = None,
        background_channels: Sequence[int] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise DataError(f"{self.path}: no such file; expected an HDF5 dataset file.") from None
        except OSError as err:
            raise DataError(f"{self.path}: cannot be opened as HDF5 ({err}).") from None
        try:
            self.info = self._validate(split, dataset, image_size, background_channels)
        except BaseException:
            self._file.close()
            raise

    # -- validation

    def _bad(self, key: str, what: str) -> DataError:
        return DataError(f"{self.path}: '{key}' {what}.")

    def _validate(
        self, split: str, dataset: str | None, image_size: int | None, background: Sequence[int] | None
    ) -> SplitInfo:
        f = self._file
        if split not in f or not isinstance(f[split], h5py.Group):
            found = ", ".join(k for k in f if isinstance(f[k], h5py.Group)) or "none"
            raise DataError(f"{self.path}: has no split group '{split}' (found: {found}).")
        g = f[split]
        self._group = g
        if "images" in g:
            layout: Literal["lom", "emorl"] = "lom"
            image_key = "images"
        elif "imgs" in g:
            layout, image_key = "emorl", "imgs"
        else:
            raise DataError(
                f"{self.path}: split '{split}' has neither 'images' (lom_pyro layout) "
                "nor 'imgs' (EfficientMORL layout)."
            )
        self.layout, self._image_key = layout, image_key
        images = g[image_key]
        if not isinstance(images, h5py.Dataset) or images.ndim != 4 or images.shape[-1] != 3:
            raise self._bad(
                f"{split}/{image_key}", f"has shape {getattr(images, 'shape', None)}; expected (N, H, W, 3)"
            )
        n, h, w, _ = images.shape
        if layout == "lom" and images.dtype != np.uint8:
            raise self._bad(f"{split}/images", f"has dtype {images.dtype}; expected uint8")
        if layout == "emorl" and images.dtype.kind not in "uif":
            raise self._bad(f"{split}/imgs", f"has dtype {images.dtype}; expected integers or floats in [0, 255]")
        if "masks" not in g:
            raise self._bad(f"{split}/masks", "is missing; expected one-hot instance masks")
        masks = g["masks"]
        expected = "(N, K, H, W)" if layout == "lom" else "(N, K, H, W, 1)"
        ndim = 4 if layout == "lom" else 5
        if not isinstance(masks, h5py.Dataset) or masks.ndim != ndim or (layout == "emorl" and masks.shape[-1] != 1):
            raise self._bad(f"{split}/masks", f"has shape {getattr(masks, 'shape', None)}; expected {expected}")
        if masks.shape[0] != n:
            raise self._bad(
                f"{split}/masks",
                f"holds {masks.shape[0]} scenes but '{split}/{image_key}' holds {n}; expected the same number",
            )
        if masks.shape[2:4] != (h, w):
            raise self._bad(
                f"{split}/masks", f"has shape {masks.shape}; expected H, W = {h}, {w} as in '{split}/{image_key}'"
            )
        if layout == "lom" and masks.dtype != np.uint8:
            raise self._bad(f"{split}/masks", f"has dtype {masks.dtype}; expected uint8")
        if masks.dtype.kind not in "uifb":
            raise self._bad(f"{split}/masks", f"has dtype {masks.dtype}; expected numbers")
        k = masks.shape[1]
        self._has_factors = "factors" in g
        factor_names: tuple[str, ...] | None = None
        if self._has_factors:
            fac = g["factors"]
            if not isinstance(fac, h5py.Dataset) or fac.ndim != 3 or fac.shape[:2] != (n, k):
                raise self._bad(
                    f"{split}/factors", f"has shape {getattr(fac, 'shape', None)}; expected (N, K, F) = ({n}, {k}, F)"
                )
            if fac.dtype.kind != "f" or (layout == "lom" and fac.dtype != np.float32):
                raise self._bad(f"{split}/factors", f"has dtype {fac.dtype}; expected float32")
            factor_names = _names(_attr(f, g, "factor_names", ()))
            if layout == "emorl" or not factor_names:
                factor_names = factor_names or tuple(f"factor_{i}" for i in range(fac.shape[2]))
            if len(factor_names) != fac.shape[2]:
                raise self._bad(
                    f"{split}/factors",
                    f"has {fac.shape[2]} factors but the file names {len(factor_names)}: {factor_names}",
                )
        self._has_scene_factors = "scene_factors" in g
        scene_names: tuple[str, ...] | None = None
        if self._has_scene_factors:
            sf = g["scene_factors"]
            if not isinstance(sf, h5py.Dataset) or sf.ndim != 2 or sf.shape[0] != n or sf.dtype != np.float32:
                raise self._bad(
                    f"{split}/scene_factors",
                    f"has shape {getattr(sf, 'shape', None)}; expected float32 (N, G) with N = {n}",
                )
            scene_names = _names(_attr(f, g, "scene_factor_names", ()))
            if len(scene_names) != sf.shape[1]:
                scene_names = tuple(f"scene_factor_{i}" for i in range(sf.shape[1]))

        name = dataset or str(_attr(f, g, "dataset", "unknown"))
        self._crop = layout == "emorl" and name.lower() in _CLEVR_NAMES
        if self._crop:
            top, bottom, left, right = CLEVR_CROP
            if h < bottom or w < right:
                raise self._bad(
                    f"{split}/imgs", f"has {h}×{w} images; the CLEVR crop needs the uncropped 240×320 frames"
                )
            self._size = image_size or 96
            out_hw = (self._size, self._size)
        else:
            if image_size is not None and (h, w) != (image_size, image_size):
                raise self._bad(f"{split}/{image_key}", f"holds {h}×{w} images; expected {image_size}×{image_size}")
            out_hw = (h, w)
        bg = background if background is not None else _attr(f, g, "background_channels", (0,))
        bg = tuple(int(c) for c in np.atleast_1d(bg))
        if any(not 0 <= c < k for c in bg):
            raise DataError(
                f"{self.path}: background channels {bg} do not fit K = {k} mask channels of split '{split}'."
            )
        preprocessing = str(_attr(f, g, "preprocessing", ""))
        if self._crop:
            preprocessing = (
                f"EfficientMORL file; CLEVR crop rows 29:221 cols 64:256, resize to {self._size} "
                "(images bilinear, masks nearest)"
            )
        return SplitInfo(
            path=self.path, split=split, layout=layout, dataset=name, num_scenes=n, image_size=out_hw,
            num_channels=k, background_channels=bg, factor_names=factor_names,
            scene_factor_names=scene_names, preprocessing=preprocessing,
        )  # fmt: skip

    # -- reading

    def __len__(self) -> int:
        return self.info.num_scenes

    def _images(self, raw: np.ndarray, start: int) -> np.ndarray:
        if raw.dtype != np.uint8:
            key = f"{self.info.split}/{self._image_key}"
            for i, img in enumerate(raw):
                if not np.isfinite(img).all():
                    raise self._bad(key, f"scene {start + i} has NaN or infinite values; expected values in [0, 255]")
                if img.min() < 0 or img.max() > 255:
                    raise self._bad(
                        key, f"scene {start + i} has values in [{img.min()}, {img.max()}]; expected [0, 255]"
                    )
            raw = np.rint(raw).astype(np.uint8)
        if self._crop:
            raw = np.stack([crop_resize_image(img, CLEVR_CROP, self._size) for img in raw])
        return raw

    def _masks(self, raw: np.ndarray, start: int) -> np.ndarray:
        if self.layout == "emorl":
            raw = raw[..., 0]
        key = f"{self.info.split}/masks"
        out = np.empty(raw.shape, dtype=np.uint8)
        for i, m in enumerate(raw):  # each scene may use {0, 1} or {0, 255}
            top = m.max() if m.size else 0
            scale = 255 if top > 1 else 1
            if not ((m == 0) | (m == scale)).all():
                raise self._bad(
                    key,
                    f"scene {start + i} has values other than 0 and {scale}; "
                    "expected binary masks ({0, 1} or {0, 255})",
                )
            out[i] = m != 0
        if self._crop:
            out = crop_resize_masks(out, CLEVR_CROP, self._size)
        return out

    def read(self, start: int, stop: int | None = None) -> dict[str, np.ndarray]:
        """Scenes ``start:stop`` (default: one scene) as a dict of arrays with a leading batch axis."""
        n = len(self)
        stop = start + 1 if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise IndexError(
                f"{self.path}: scenes {start}:{stop} out of range for split '{self.info.split}' with {n} scenes"
            )
        g = self._group
        out = {
            "images": self._images(g[self._image_key][start:stop], start),
            "masks": self._masks(g["masks"][start:stop], start),
        }
        if self._has_factors:
            out["factors"] = np.asarray(g["factors"][start:stop], dtype=np.float32)
        if self._has_scene_factors:
            out["scene_factors"] = np.asarray(g["scene_factors"][start:stop], dtype=np.float32)
        return out

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """One scene, without the batch axis."""
        if index < 0:
            index += len(self)
        return {k: v[0] for k, v in self.read(index).items()}

    def iter_chunks(self, chunk_size: int = 256) -> Iterator[dict[str, np.ndarray]]:
        """All scenes, ``chunk_size`` at a time."""
        for start in range(0, len(self), chunk_size):
            yield self.read(start, min(start + chunk_size, len(self)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> H5SplitReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_splits(path: PathLike) -> tuple[str, ...]:
    """Names of the split groups in an HDF5 file."""
    try:
        with h5py.File(path, "r") as f:
            return tuple(k for k in f if isinstance(f[k], h5py.Group))
    except OSError as err:
        raise DataError(f"{os.fspath(path)}: cannot be opened as HDF5 ({err}).") from None


def read_split(path: PathLike, split: str = "train", **kwargs: Any) -> dict[str, np.ndarray]:
    """Read a whole split into memory (small files, tests); ``kwargs`` go to :class:`H5SplitReader`."""
    with H5SplitReader(path, split, **kwargs) as reader:
        return reader.read(0, len(reader))


# ----------------------------------------------------------------------------- procedural data


def write_procedural(
    name: str,
    dst: PathLike,
    n_train: int,
    n_test: int,
    image_size: int = 64,
    seed: int = 0,
    *,
    chunk_size: int = 1000,
    progress: bool = False,
) -> Path:
    """Generate a procedural dataset and write it in the lom_pyro layout (``train`` and ``test``).

    Scenes come from :func:`lom_pyro.data.procedural.generate` in chunks of
    ``chunk_size``; chunk ``c`` of split ``s`` uses the seed
    ``SeedSequence([seed, s]).generate_state(c + 1)[c]`` (s = 0 for train, 1 for test), so
    the splits never share a generator stream and memory stays bounded.
    """
    from lom_pyro.data.procedural import generate  # lazy: written alongside, heavy to import

    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"need n_train, n_test >= 0 and at least one scene, got {n_train}, {n_test}")
    writer: H5Writer | None = None
    try:
        for split_index, (split, n) in enumerate((("train", n_train), ("test", n_test))):
            num_chunks = -(-n // chunk_size)
            seeds = np.random.SeedSequence([seed, split_index]).generate_state(max(num_chunks, 1))
            for c in range(num_chunks):
                size = min(chunk_size, n - c * chunk_size)
                scenes = generate(name, size, image_size=image_size, seed=int(seeds[c]))
                if writer is None:
                    writer = H5Writer(
                        dst, dataset=scenes.name, background_channels=scenes.background_channels,
                        factor_names=scenes.factor_names,
                        preprocessing=f"procedural '{name}', {image_size}px, seed {seed}",
                        attrs={"source": f"lom_pyro.data.procedural.generate({name!r})", "seed": seed},
                    )  # fmt: skip
                writer.append(scenes.images, scenes.masks, scenes.factors, split=split)
                if progress:
                    print(f"{split}: {c * chunk_size + size}/{n}", flush=True)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    assert writer is not None
    return writer.close()
