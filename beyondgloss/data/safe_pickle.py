"""Reading the reference code's pickle-based files without trusting them.

The reference stores labels as gzip pickles and HaMeR features as LZMA pickles. A plain `pickle.load` runs
whatever the file asks for; this unpickler accepts plain containers, strings, numbers and numpy arrays
(rebuilt from their raw bytes), and refuses every other global with an error that names the file.
"""

import gzip
import io
import lzma
import pickle
from pathlib import Path

__all__ = ["UnsafePickleError", "restricted_load", "restricted_loads", "load_pickle_file"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for an object other than plain data."""


# numpy arrays pickle through these reconstructors; they build arrays and dtypes from raw bytes only.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("builtins", "range"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refused to load `{module}.{name}`; only plain data (dicts, lists, strings, numbers, "
            "numpy arrays) is read from pickle files. Re-export the file with plain data."
        )


def restricted_load(file, source: str = "<pickle>"):
    """Unpickles plain data from a binary file object; anything else raises `UnsafePickleError`."""
    return _RestrictedUnpickler(file, source).load()


def restricted_loads(data: bytes, source: str = "<pickle>"):
    return restricted_load(io.BytesIO(data), source)


def load_pickle_file(path):
    """Reads a plain, `.gz` (gzip) or `.lzma`/`.xz` pickle file with the restricted unpickler.

    Compression is recognised from the file's first bytes, so the reference's extension-less
    `labels.train` (gzip) files work too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    head = path.read_bytes()[:6]
    if head[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif head[:6] == b"\xfd7zXZ\x00" or head[:1] == b"\x5d":
        opener = lzma.open
    else:
        opener = open
    try:
        with opener(path, "rb") as handle:
            return restricted_load(handle, str(path))
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, lzma.LZMAError, ValueError) as error:
        raise ValueError(f"{path}: not a readable pickle file ({type(error).__name__}: {error})") from error

