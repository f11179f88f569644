"""A shared bundle's files: read from a zip or a folder without trusting them, hashed, unpacked.

A shared archive is a zip of one bundle folder (``jssl_varnet/configs/...``) that carries
:data:`CHECKSUMS`, a ``sha256sum``-format manifest of every other file. The bundle's hash, the id a
fine-tuned model records as its parent, is the SHA-256 of that manifest (:func:`bundle_hash`), so it covers
every file and does not depend on zip timestamps.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from pipeline.io.atomic import replace_folder, write_atomic

__all__ = [
    "CHECKSUMS", "ArchiveError", "bundle_hash", "checksums_text", "parse_checksums", "read_bundle", "unpack",
    "write_zip",
]

#: The sha256 manifest of a shared bundle, relative to the bundle folder.
CHECKSUMS = "checksums.sha256"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: Fixed timestamp of every zip member, so the same files always give the same archive bytes.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class ArchiveError(ValueError):
    """A shared bundle that must not be used; the message is one line saying what failed."""


def _safe_name(name: str, source: str | os.PathLike) -> PurePosixPath:
    """A member name as a relative path inside the bundle, refusing absolute names and ``..`` (zip slip)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(f"{source}: member {name!r} would be written outside the bundle folder")
    return path


def read_bundle(source: str | os.PathLike) -> tuple[str, dict[str, bytes]]:
    """Every file of a shared bundle, read into memory; nothing is unpacked or parsed.

    Args:
        source: a zip of one bundle folder, or an unpacked bundle folder.

    Returns:
        ``(name, files)``: the bundle folder's name (e.g. ``"jssl_varnet"``) and relative POSIX path -> bytes.

    Raises:
        ArchiveError: not a zip or folder, a member outside the bundle folder (absolute, ``..``), a link,
            members under more than one top folder.
    """
    source = Path(source)
    files: dict[str, bytes] = {}
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_symlink():
                raise ArchiveError(f"{source}: {path.relative_to(source).as_posix()} is a link; a bundle holds files")
            if path.is_file():
                files[path.relative_to(source).as_posix()] = path.read_bytes()
        return source.name, files
    if not zipfile.is_zipfile(source):
        raise ArchiveError(f"{source}: not a zip archive or a bundle folder")
    tops = set()
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            name = _safe_name(info.filename, source)
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"{source}: member {info.filename} is a link; a bundle holds files")
            if len(name.parts) < 2:
                raise ArchiveError(f"{source}: member {info.filename} is not inside the bundle folder")
            tops.add(name.parts[0])
            files[PurePosixPath(*name.parts[1:]).as_posix()] = archive.read(info)
    if len(tops) != 1:
        raise ArchiveError(f"{source}: the archive must hold one bundle folder, found {sorted(tops) or 'none'}")
    return tops.pop(), files


def checksums_text(files: Mapping[str, bytes]) -> str:
    """The ``sha256sum``-format manifest (``<hex>  <path>`` lines, sorted by path) of ``files``."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))


def parse_checksums(data: bytes) -> dict[str, str]:
    """The :data:`CHECKSUMS` manifest: relative path -> SHA-256 hex digest.

    Args:
        data: the manifest's bytes (``<64 hex>  <path>`` lines).

    Raises:
        ArchiveError: a line that is not ``<sha256>  <path>``.
    """
    listed: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or not _HEX64.match(digest) or not name:
            raise ArchiveError(f"{CHECKSUMS} line {number} is not '<sha256>  <path>'")
        listed[name] = digest
    return listed


def bundle_hash(bundle: str | os.PathLike | Mapping[str, bytes]) -> str:
    """The bundle's id: SHA-256 (hex) of its :data:`CHECKSUMS` file (of a folder, only that file is read).

    Args:
        bundle: a shared bundle's zip or folder, or its files as returned by :func:`read_bundle`.

    Raises:
        ArchiveError: the bundle has no :data:`CHECKSUMS` (it was not exported with ``pipeline.share``).
    """
    if isinstance(bundle, Mapping):
        data = bundle.get(CHECKSUMS)
    elif Path(bundle).is_dir():
        path = Path(bundle) / CHECKSUMS
        data = path.read_bytes() if path.is_file() else None
    else:
        data = read_bundle(bundle)[1].get(CHECKSUMS)
    if data is None:
        raise ArchiveError(f"{bundle if not isinstance(bundle, Mapping) else 'bundle'}: no {CHECKSUMS}; "
                           "export it with `python -m pipeline.share export`")
    return hashlib.sha256(data).hexdigest()


def write_zip(name: str, files: Mapping[str, bytes], path: str | os.PathLike) -> Path:
    """Write ``files`` as the zip of one folder ``name`` (sorted, fixed timestamps: reproducible bytes).

    Args:
        name: the bundle folder's name inside the zip (``jssl_varnet``).
        files: relative POSIX path -> bytes.
        path: the zip to write (atomically, :func:`write_atomic`).

    Returns:
        ``path``.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in sorted(files.items()):
            info = zipfile.ZipInfo(f"{name}/{member}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return write_atomic(path, buffer.getvalue())


def unpack(files: Mapping[str, bytes], folder: str | os.PathLike) -> Path:
    """Write verified ``files`` as the whole content of ``folder``, nothing else left in it.

    The files are written into a fresh temporary folder next to ``folder``, which then takes its place
    (:func:`os.replace`), so no file of an earlier bundle (a config the new archive does not have) survives
    next to the new ones, and an interrupted unpack leaves no half-written bundle. An existing ``folder`` is
    replaced only when it is empty or an earlier unpacked shared bundle (it holds :data:`CHECKSUMS`).

    Args:
        files: relative POSIX path -> bytes, as verified (:attr:`pipeline.share.verify.VerifiedBundle.files`).
        folder: the bundle folder to create or replace.

    Returns:
        ``folder``, the bundle root to pass as ``--bundle_root``.

    Raises:
        ArchiveError: a member name outside the folder, or ``folder`` exists and is neither empty nor an
            unpacked shared bundle (nothing is removed then).
    """
    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir()) or (folder / CHECKSUMS).is_file())):
        raise ArchiveError(f"{folder} exists and is not an unpacked shared bundle: choose an empty or new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp's 0o700 would become the bundle folder's mode
    try:
        for name, data in files.items():
            target = staging / _safe_name(name, folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        replace_folder(staging, folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder
