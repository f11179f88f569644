"""The one exception type for bad input data, and how to find it behind wrapping exceptions."""

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


_WORKER_PREFIX = f"{DataError.__module__}.{DataError.__qualname__}: "


def data_error_message(err: BaseException) -> str | None:
    """The one-line message of the :class:`DataError` behind ``err``, or ``None`` if there is none.

    Finds it when ``err`` is a :class:`DataError`, when one is in its cause/context chain (e.g. wrapped by
    MONAI's ``apply_transform``), and when a DataLoader worker raised it: PyTorch re-raises a worker's
    exception in the main process as a ``RuntimeError`` carrying the worker's traceback text, whose last
    line is ``pipeline.data.errors.DataError: <message>``.

    >>> data_error_message(RuntimeError("applying transform"))
    >>> data_error_message(DataError("/data/a.h5", "NaN or Inf values in 'kspace'", 3))
    "/data/a.h5, slice 3: NaN or Inf values in 'kspace'"
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DataError):
            return str(current)
        lines = [line for line in str(current).splitlines() if line.startswith(_WORKER_PREFIX)]
        if f"Caught {DataError.__name__}" in str(current) and lines:
            return lines[-1][len(_WORKER_PREFIX) :]
        current = current.__cause__ or current.__context__
    return None
