"""Restricted reader for pickles that hold only plain data (the official GloVe word/idx files).

`pickle.load` can run arbitrary code (any class or function named in the stream is imported and
called). The official `our_vab_words.pkl` (list of str) and `our_vab_idx.pkl` (dict str -> int)
need none of that, so this reader:

1. scans the opcode stream first (`pickletools.genops`, which only parses) and rejects every opcode
   that imports or calls something (GLOBAL, STACK_GLOBAL, REDUCE, INST, OBJ, NEWOBJ, BUILD, EXT*,
   persistent ids) before anything is unpickled;
2. unpickles with an `Unpickler` whose `find_class` and `persistent_load` refuse everything;
3. checks the result is None/bool/int/float/str or (nested) list/tuple/dict of those.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

_FORBIDDEN_OPCODES = {
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD",
    "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
}  # fmt: skip
_PLAIN_SCALARS = (type(None), bool, int, float, str)


class UnsafePickleError(ValueError):
    """The pickle references code (a class, function or persistent object) or non-plain data."""


class _RefusingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise UnsafePickleError(f"pickle references {module}.{name}; only plain data is accepted")

    def persistent_load(self, pid):
        raise UnsafePickleError("pickle uses persistent ids; only plain data is accepted")


def _check_plain(obj, where: str = "root") -> None:
    if isinstance(obj, _PLAIN_SCALARS):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, f"{where} key")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise UnsafePickleError(f"{where} has non-plain type {type(obj).__name__}")


def loads_plain(data: bytes, source: str = "<bytes>"):
    """Unpickle `data` if it holds only plain data; raise UnsafePickleError otherwise (nothing runs)."""
    try:
        for op, _, pos in pickletools.genops(data):
            if op.name in _FORBIDDEN_OPCODES:
                raise UnsafePickleError(f"{source}: opcode {op.name} at byte {pos} is not allowed")
    except UnsafePickleError:
        raise
    except Exception as e:  # malformed stream
        raise UnsafePickleError(f"{source}: not a valid pickle ({e})") from e
    try:
        obj = _RefusingUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except UnsafePickleError:
        raise
    except Exception as e:
        raise UnsafePickleError(f"{source}: cannot unpickle ({e})") from e
    _check_plain(obj)
    return obj


def load_plain_pickle(path: str | Path):
    """Read a pickle file holding only plain data (list/dict/tuple of str/int/float/bool/None)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    return loads_plain(path.read_bytes(), str(path))
