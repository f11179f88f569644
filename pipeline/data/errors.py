"""The one exception type for bad input data."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad or unreadable input data.

    The message always names the file, the slice (when one is involved) and what is wrong, e.g.
    ``"/data/volume_003.h5, slice 7: NaN or Inf values in 'kspace'"``. It subclasses ``ValueError`` so
    generic ``except ValueError`` handlers keep working.

    Args:
        file: path of the offending file (shown as given).
        problem: what is wrong, in words.
        slice_idx: slice index involved, if any.

    Attributes:
        file: path of the offending file, as given.
        slice_idx: slice index, or ``None``.
        problem: the description without the location prefix.
    """

    def __init__(self, file: str | os.PathLike, problem: str, slice_idx: int | None = None) -> None:
        self.file = os.fspath(file)
        self.slice_idx = slice_idx
        self.problem = problem
        where = self.file if slice_idx is None else f"{self.file}, slice {slice_idx}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the three fields when pickled across DataLoader workers
        return (type(self), (self.file, self.problem, self.slice_idx))
