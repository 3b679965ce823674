"""Safe handling of uploaded evaluation sets (HumanML3D-format archives).

An archive (.zip, .tar, .tar.gz) holds `texts/<id>.txt` and `new_joint_vecs/<id>.npy`, at its root or inside
one top folder. Extraction refuses absolute paths, `..`, links and special files, and bounds the file count
and the bytes actually written (not the sizes the archive claims). Arrays are read with
`allow_pickle=False` and must be finite float matrices (T, 263) (or (T, 251) for KIT-ML).
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

FEATURE_DIMS = (263, 251)
_SAFE_STEM = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_TEXT_BYTES = 64 * 1024
MAX_TAR_METADATA_BYTES = 64 * 1024
MAX_ZIP_ENTRY_BYTES = 1024  # central-directory bytes allowed per permitted entry (name + extra fields)
_TAR_METADATA = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                 tarfile.GNUTYPE_LONGLINK)
Member = tuple[str, bool, BinaryIO | None]  # (name, is a folder, stream of a file)


class UploadError(ValueError):
    """A rejected upload; `status` is the HTTP status to answer with (400, 413 or 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_unpacked_bytes: int  # one archive
    max_frames: int
    job_max_bytes: int = 0  # all archives of one job (0: no such limit)
    job_used_bytes: int = 0  # unpacked by the job's earlier archives


def _safe_member_path(name: str) -> PurePosixPath | None:
    """Relative, normalised member path; None for a folder entry. Raises on absolute or escaping names."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadError(f"archive member {name!r} has an absolute or Windows path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise UploadError(f"archive member {name!r} escapes the archive folder ('..')")
    return PurePosixPath(*parts) if parts else None


def _copy_bounded(src: BinaryIO, dest: Path, budget: list[int], limits: Limits) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while chunk := src.read(1 << 20):
            budget[0] += len(chunk)
            if budget[0] > limits.max_unpacked_bytes:
                message = f"archive unpacks to more than {limits.max_unpacked_bytes} bytes"
                raise UploadError(message, status=413)
            if limits.job_max_bytes and limits.job_used_bytes + budget[0] > limits.job_max_bytes:
                message = (f"the job's uploads unpack to more than {limits.job_max_bytes} bytes (the per-job "
                           "upload quota)")
                raise UploadError(message, status=413)
            out.write(chunk)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized pax headers and GNU long names: tarfile reads those records whole into memory,
    so a few compressed kilobytes could otherwise expand to gigabytes of RAM."""

    def _proc_member(self, archive: tarfile.TarFile):
        if self.type in _TAR_METADATA and self.size > MAX_TAR_METADATA_BYTES:
            raise UploadError(f"archive header record of {self.size} bytes (more than "
                              f"{MAX_TAR_METADATA_BYTES}); refused", status=413)
        return super()._proc_member(archive)


def _open_tar(path: Path) -> tarfile.TarFile | None:
    """The (possibly compressed) tar at `path` with bounded header records, or None if it is not a tar."""
    try:
        return tarfile.open(path, mode="r:*", tarinfo=_BoundedTarInfo)
    except tarfile.ReadError:
        return None


def _check_zip_directory(path: Path, limits: Limits) -> None:
    """Refuse a zip whose central directory is too large before zipfile parses all of it into memory."""
    with path.open("rb") as handle:
        end = zipfile._EndRecData(handle)  # the end-of-central-directory record (zip64 aware)
    if end and (end[zipfile._ECD_ENTRIES_TOTAL] > limits.max_files
                or end[zipfile._ECD_SIZE] > limits.max_files * MAX_ZIP_ENTRY_BYTES):
        raise UploadError(f"archive holds more than {limits.max_files} entries", status=413)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadError(f"archive member {info.filename!r} is a link; links are not allowed")
        if info.is_dir():
            yield info.filename, True, None
        else:
            with archive.open(info) as handle:
                yield info.filename, False, handle


def _tar_members(archive: tarfile.TarFile) -> Iterator[Member]:
    for member in archive:
        if member.issym() or member.islnk():
            raise UploadError(f"archive member {member.name!r} is a link; links are not allowed")
        if member.isdir():
            yield member.name, True, None
        elif member.isfile():
            yield member.name, False, archive.extractfile(member)
        else:
            raise UploadError(f"archive member {member.name!r} is not a regular file")


def extract_archive(path: Path, dest: Path, limits: Limits) -> int:
    """Unpack a zip or tar(.gz) archive into `dest` under the limits; returns the bytes written."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(path):
            _check_zip_directory(path, limits)
            with zipfile.ZipFile(path) as archive:
                return _extract_members(_zip_members(archive), dest, limits)
        elif (archive := _open_tar(path)) is not None:
            with archive:
                return _extract_members(_tar_members(archive), dest, limits)
        else:
            raise UploadError("the upload is not a .zip, .tar or .tar.gz archive", status=400)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise UploadError(f"the archive is corrupt: {error}", status=400) from error


def _extract_members(members: Iterator[Member], dest: Path, limits: Limits) -> int:
    count, budget = 0, [0]
    for name, is_dir, handle in members:
        count += 1
        if count > limits.max_files:
            raise UploadError(f"archive holds more than {limits.max_files} entries", status=413)
        rel = _safe_member_path(name)
        if rel is None:
            continue
        target = dest.joinpath(*rel.parts)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
        elif target.exists():
            raise UploadError(f"archive member {name!r} appears twice")
        else:
            _copy_bounded(handle, target, budget, limits)
    return budget[0]


def find_root(folder: Path) -> Path:
    """The folder holding texts/ and new_joint_vecs/ (the archive root or its single top folder)."""
    candidates = [folder, *(p for p in folder.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "texts").is_dir() and (candidate / "new_joint_vecs").is_dir():
            return candidate
    raise UploadError("the archive must contain texts/ and new_joint_vecs/ folders (HumanML3D layout)")


def validate_motion_set(root: Path, limits: Limits) -> dict[str, int]:
    """Check every motion and caption of a HumanML3D-layout folder; returns a summary."""
    vec_dir, text_dir = root / "new_joint_vecs", root / "texts"
    vecs = {p.stem: p for p in vec_dir.iterdir() if p.suffix == ".npy"}
    texts = {p.stem: p for p in text_dir.iterdir() if p.suffix == ".txt"}
    if not vecs:
        raise UploadError("new_joint_vecs/ holds no .npy file")
    missing = sorted(set(vecs) - set(texts))
    if missing:
        raise UploadError(f"motions without a caption file in texts/: {missing[:5]}")
    dims, frames = set(), 0
    for stem, path in sorted(vecs.items()):
        if not _SAFE_STEM.match(stem):
            raise UploadError(f"bad motion file name {path.name!r}")
        array = load_features(path, limits.max_frames)
        dims.add(array.shape[1])
        frames += array.shape[0]
        check_caption(texts[stem])
    if len(dims) > 1:
        raise UploadError(f"motions mix feature sizes {sorted(dims)}")
    return {"motions": len(vecs), "frames": frames, "feature_dim": dims.pop()}


NPY_MAX_HEADER_BYTES = 10_000  # numpy's own default bound on the header dictionary


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header, without reading the array; UploadError if malformed."""
    npy = np.lib.format
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        with path.open("rb") as handle:
            version = npy.read_magic(handle)
            if version not in readers:
                raise UploadError(f"{path.name}: unsupported .npy format version {version}")
            shape, _, dtype = readers[version](handle, max_header_size=NPY_MAX_HEADER_BYTES)
            return tuple(shape), dtype, handle.tell()
    except UploadError:
        raise
    except Exception as error:  # numpy may raise ValueError, SyntaxError, tokenize.TokenError, ... on bad input
        raise UploadError(f"{path.name}: not a valid .npy file (malformed header: "
                          f"{type(error).__name__})") from error


def _check_npy_header(path: Path, max_frames: int) -> None:
    """Refuse a .npy whose header declares anything but a bounded float (T, D) matrix of the file's size,
    before any array is allocated (a header may claim (10**8, 263) in a few bytes)."""
    shape, dtype, offset = _npy_header(path)
    if dtype.hasobject:
        raise UploadError(f"{path.name}: not a plain numeric .npy array (object arrays need pickle; refused)")
    if not np.issubdtype(dtype, np.floating):
        raise UploadError(f"{path.name}: expected a float array, got {dtype}")
    if len(shape) != 2 or shape[1] not in FEATURE_DIMS:
        raise UploadError(f"{path.name}: expected shape (frames, 263) or (frames, 251), got {shape}")
    if not 1 <= shape[0] <= max_frames:
        raise UploadError(f"{path.name}: {shape[0]} frames; allowed 1..{max_frames}")
    expected = offset + shape[0] * shape[1] * dtype.itemsize
    if path.stat().st_size != expected:
        raise UploadError(f"{path.name}: the file size does not match its header (truncated or padded)")


def load_features(path: Path, max_frames: int) -> np.ndarray:
    """Load one (T, D) motion safely and check shape, dtype and values (header checked before loading)."""
    _check_npy_header(path, max_frames)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays need pickle: refused
        raise UploadError(f"{path.name}: not a plain numeric .npy array ({error})") from error
    except (OSError, EOFError) as error:
        raise UploadError(f"{path.name}: unreadable .npy file ({error})") from error
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        kind = getattr(array, "dtype", type(array))
        raise UploadError(f"{path.name}: expected a float array, got {kind}")
    if array.ndim != 2 or array.shape[1] not in FEATURE_DIMS:
        raise UploadError(f"{path.name}: expected shape (frames, 263) or (frames, 251), got {array.shape}")
    if not 1 <= array.shape[0] <= max_frames:
        raise UploadError(f"{path.name}: {array.shape[0]} frames; allowed 1..{max_frames}")
    if not np.isfinite(array).all():
        raise UploadError(f"{path.name}: contains NaN or infinite values")
    return array


def check_caption(path: Path) -> None:
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise UploadError(f"{path.name}: caption file larger than {MAX_TEXT_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UploadError(f"{path.name}: captions must be UTF-8 text") from error
    if not any(line.split("#", 1)[0].strip() for line in text.splitlines()):
        raise UploadError(f"{path.name}: no caption (lines are 'caption#tokens#start#end')")


def save_upload(source: BinaryIO, dest: Path, max_bytes: int) -> int:
    """Copy an uploaded file to disk, refusing more than `max_bytes`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with dest.open("wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise UploadError(f"upload larger than {max_bytes} bytes", status=413)
            out.write(chunk)
    if written == 0:
        raise UploadError("the uploaded file is empty", status=400)
    return written


def unpack_motion_set(upload: BinaryIO, workdir: Path, name: str, max_bytes: int,
                      limits: Limits) -> tuple[Path, dict]:
    """Save, unpack and validate one uploaded archive; returns (root folder, summary with `unpacked_bytes`)."""
    archive = workdir / f"{name}.archive"
    try:
        save_upload(upload, archive, max_bytes)
        unpacked = extract_archive(archive, workdir / name, limits)
    finally:
        archive.unlink(missing_ok=True)
    root = find_root(workdir / name)
    return root, {**validate_motion_set(root, limits), "unpacked_bytes": unpacked}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

