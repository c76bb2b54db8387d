"""The one exception type of :mod:`lom_pyro.data`.

Every problem with *input data* (a corrupt TFRecord, a PNG that will not open, an
HDF5 file with a missing key, an image with NaNs) raises :class:`DataError` with a
one-sentence message that names the file, the record or key, and what was expected.
``lom-pyro convert`` prints that sentence and exits with status 1.
"""

from __future__ import annotations

__all__ = ["DataError", "TFRecordError"]


class DataError(ValueError):
    """Input data is missing, malformed or inconsistent; the message names the file."""


class TFRecordError(DataError):
    """A TFRecord file is truncated, fails its CRC check or holds a malformed protobuf."""
