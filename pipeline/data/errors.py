"""The one exception type for bad input data, and how to find it behind wrapping exceptions."""

from __future__ import annotations

import os
import re

_WORKER_PREFIX = "pipeline.data.errors.DataError: "
_LOCATION = re.compile(r"^(?P<file>.+?)(?:, slice (?P<slice>\d+))?: (?P<problem>.*)$", re.S)


class DataError(ValueError):
    """Bad or unreadable input data.

    The message always names the file, the slice (when one is involved) and what is wrong, e.g.
    ``"/data/volume_003.h5, slice 7: NaN or Inf values in 'kspace'"``. It subclasses ``ValueError`` so
    generic ``except ValueError`` handlers keep working.

    Raised in a DataLoader worker, it reaches the main process as a ``DataError`` again: PyTorch re-raises a
    worker's exception as ``type(err)(text)`` with the worker's traceback as ``text``, and a ``DataError``
    built from one such text (no ``problem``) takes the file, slice and problem from its last line.

    Args:
        file: path of the offending file (shown as given); or, without ``problem``, a full message.
        problem: what is wrong, in words.
        slice_idx: slice index involved, if any.

    Attributes:
        file: path of the offending file, as given.
        slice_idx: slice index, or ``None``.
        problem: the description without the location prefix.

    >>> err = DataError("/data/a.h5", "NaN or Inf values in 'kspace'", 3)
    >>> str(err), str(DataError(f"Caught DataError in DataLoader worker.\\n...\\n{_WORKER_PREFIX}{err}\\n"))
    ("/data/a.h5, slice 3: NaN or Inf values in 'kspace'", "/data/a.h5, slice 3: NaN or Inf values in 'kspace'")
    """

    def __init__(self, file: str | os.PathLike, problem: str | None = None, slice_idx: int | None = None) -> None:
        if problem is None:  # a message only: a worker's traceback text, or "<file>[, slice <i>]: <problem>"
            text = os.fspath(file)
            lines = [line for line in text.splitlines() if line.startswith(_WORKER_PREFIX)]
            message = lines[-1][len(_WORKER_PREFIX) :] if lines else text.strip()
            match = _LOCATION.match(message)
            file, problem = (match["file"], match["problem"]) if match else ("<unknown file>", message)
            slice_idx = int(match["slice"]) if match and match["slice"] is not None else None
        self.file = os.fspath(file)
        self.slice_idx = slice_idx
        self.problem = problem
        where = self.file if slice_idx is None else f"{self.file}, slice {slice_idx}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # keep the three fields when pickled across DataLoader workers
        return (type(self), (self.file, self.problem, self.slice_idx))


def data_error_message(err: BaseException) -> str | None:
    """The one-line message of the :class:`DataError` behind ``err``, or ``None`` if there is none.

    Finds it when ``err`` is a :class:`DataError` (also one re-raised from a DataLoader worker) and when one
    is in its cause/context chain (e.g. wrapped by MONAI's ``apply_transform``).

    >>> data_error_message(RuntimeError("applying transform")) is None
    True
    >>> try:
    ...     raise RuntimeError("applying transform") from DataError("/data/a.h5", "empty 'kspace'")
    ... except RuntimeError as err:
    ...     print(data_error_message(err))
    /data/a.h5: empty 'kspace'
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DataError):
            return str(current)
        current = current.__cause__ or current.__context__
    return None
