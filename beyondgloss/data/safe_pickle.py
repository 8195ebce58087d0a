"""Reading the reference code's pickle-based files without trusting them.

The reference stores labels as gzip pickles and HaMeR features as LZMA pickles. A plain `pickle.load` runs
whatever the file asks for; this unpickler accepts plain containers, strings, numbers and numpy arrays
(rebuilt from their raw bytes), written with any pickle protocol (0 to 5), and refuses every other global
with an error that names the file.

It also refuses to let a small file take a large amount of memory:

- the decompressed pickle is read as a stream with a cap (`max_bytes`, default 256 MiB), so a compression bomb
  stops at the cap instead of filling memory;
- every opcode is charged an estimate of the memory it creates (a container is far larger than the one byte
  that makes it), and the load stops when the estimate passes `max_memory` (default 2 GiB);
- the few allowed callables that could allocate from a number (`bytearray(n)`, `set(range(n))`, an array
  whose shape does not match its data) only accept data that is already in the file.

Both limits can be raised for trusted, very large files with the arguments of `load_pickle_file`, or with the
environment variables `BEYONDGLOSS_PICKLE_MAX_BYTES` and `BEYONDGLOSS_PICKLE_MAX_MEMORY` (in bytes), which
also reach the command line tools (`beyondgloss import-hands`, dataset builders).
"""

import gzip
import io
import lzma
import math
import os
import pickle
from collections import OrderedDict
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_PICKLE_BYTES",
    "DEFAULT_MAX_PICKLE_MEMORY",
    "PickleLimitError",
    "UnsafePickleError",
    "restricted_load",
    "restricted_loads",
    "load_pickle_file",
]

DEFAULT_MAX_PICKLE_BYTES = 256 * 2**20
DEFAULT_MAX_PICKLE_MEMORY = 2 * 2**30
_MAX_BYTES_VARIABLE = "BEYONDGLOSS_PICKLE_MAX_BYTES"
_MAX_MEMORY_VARIABLE = "BEYONDGLOSS_PICKLE_MAX_MEMORY"


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for an object other than plain data."""


class PickleLimitError(UnsafePickleError):
    """The pickle is larger, or would build more objects, than the configured limit allows."""


def _limit(value, variable: str, default: int) -> int:
    if value is None:
        text = os.environ.get(variable)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{variable}={text!r}: give a whole number of bytes (e.g. {default})") from None
        source = variable
    else:
        source = "the limit"
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{source}={value!r}: give a positive whole number of bytes (e.g. {default})")
    return value


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count} bytes"


class _CappedReader:
    """A read-only view of a (decompressing) file that fails once more than `limit` bytes were read.

    The unpickler reads straight from it, so a compression bomb never exists in memory beyond the cap.
    """

    def __init__(self, file, limit: int, source: str):
        self._file, self._limit, self._source = file, limit, source
        self.count = 0

    def _account(self, data):
        self.count += len(data)
        if self.count > self._limit:
            raise PickleLimitError(
                f"{self._source}: the pickle decompresses to more than {_size(self._limit)}, the limit for pickle "
                f"files. If the file is trusted and really this large, raise the limit with max_bytes=... or "
                f"{_MAX_BYTES_VARIABLE}=<bytes>"
            )
        return data

    def _capped(self, size) -> int:
        remaining = self._limit - self.count + 1
        return remaining if size is None or size < 0 else min(size, remaining)

    def read(self, size=-1):
        return self._account(self._file.read(self._capped(size)))

    def readline(self, size=-1):
        # Protocol 0 reads strings and numbers line by line; an endless line must hit the cap too.
        return self._account(self._file.readline(self._capped(size)))

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# -- the allowed callables ------------------------------------------------------------------------------
# Each accepts only what the pickler itself writes for plain data, so none allocates more than the data that
# is already in the file.

class _NdarrayType:
    """Stands for `numpy.ndarray` in the pickle: only `_reconstruct` may use it, it cannot be called."""

    def __call__(self, *args, **kwargs):
        _refuse("numpy.ndarray() called directly (it allocates from a shape)")


_NDARRAY = _NdarrayType()


def _refuse(what: str):
    raise UnsafePickleError(f"refused {what}: only plain data is read from pickle files")


def _plain_container(args, name):
    if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, set, frozenset))):
        _refuse(f"{name}() of {', '.join(type(a).__name__ for a in args)}")
    return args


def _set(*args):
    return set(*_plain_container(args, "set"))


def _frozenset(*args):
    return frozenset(*_plain_container(args, "frozenset"))


_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"}


def _bytearray(*args):
    # Protocols 0-4 write bytearray(bytes) or, before protocol 3, bytearray(str, "latin-1"); bytearray(n)
    # would allocate n bytes from a number.
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and str(args[1]).lower() in _LATIN1:
        return bytearray(args[0], "latin-1")
    _refuse(f"bytearray() of {', '.join(type(a).__name__ for a in args)}")


def _bytes(*args):
    # Protocols 0-2 write an empty bytes object as bytes(); bytes(n) would allocate n bytes from a number.
    if args:
        _refuse(f"bytes() of {', '.join(type(a).__name__ for a in args)}")
    return b""


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # How protocols 0-2 write a bytes object: _codecs.encode(str, "latin1").
    if not isinstance(text, str) or str(encoding).lower() not in _LATIN1:
        _refuse(f"_codecs.encode() of {type(text).__name__} with {encoding!r}")
    return text.encode("latin-1")


def _count(shape) -> int:
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                 for d in shape):
        _refuse(f"an array shape {shape!r}")
    return math.prod(shape)


def _reconstruct(subtype, shape, dtype):
    import numpy as np

    # numpy pickles an array as an empty one (shape (0,)) plus its state; any other shape (even one element
    # of a dtype gigabytes wide) would be allocated before any data is seen.
    if subtype is not _NDARRAY or _count(shape if isinstance(shape, tuple) else (shape,)) != 0:
        _refuse(f"numpy _reconstruct({subtype!r}, {shape!r})")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _plain_dtype(dtype):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        _refuse(f"numpy data of type {dtype!r} from raw bytes")
    return dtype


def _scalar(dtype, data=None):
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar

    dtype = _plain_dtype(dtype)
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        _refuse(f"a numpy {dtype} scalar from {type(data).__name__} of length {len(data) if data else 0}")
    return scalar(dtype, data)


def _frombuffer(buffer, dtype, shape, order="C"):
    import numpy as np

    # Protocol 5 writes contiguous arrays as _frombuffer(bytes, dtype, shape, order).
    dtype = _plain_dtype(dtype)
    count = _count(shape)
    if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != count * dtype.itemsize or (
            count and not dtype.itemsize) or order not in ("C", "F"):
        _refuse(f"a numpy array of shape {shape} and type {dtype} from {type(buffer).__name__} of another size")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order=order)


def _check_array_state(state):
    """numpy's `ndarray.__setstate__` trusts its state (an object array whose list is shorter than its shape
    crashes the interpreter), so the state must describe exactly the data it carries."""
    import numpy as np

    if not isinstance(state, tuple) or len(state) not in (4, 5):
        _refuse(f"a numpy array state of {type(state).__name__}")
    shape, dtype, _fortran, data = state[-4:]
    count = _count(shape)
    if not isinstance(dtype, np.dtype):
        _refuse(f"a numpy array state with dtype {dtype!r}")
    if dtype.hasobject:
        if dtype != np.dtype(object) or not isinstance(data, list) or len(data) != count:
            _refuse(f"a numpy object array of shape {shape} from {type(data).__name__} of another length")
    elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize or (
            count and not dtype.itemsize):
        _refuse(f"a numpy array of shape {shape} and type {dtype} from data of another size")


def _safe_globals() -> dict:
    import numpy as np

    table = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): _set,
        ("builtins", "frozenset"): _frozenset,
        ("builtins", "bytearray"): _bytearray,
        ("builtins", "bytes"): _bytes,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("builtins", "range"): range,
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
    }
    # Protocols 0-2 name builtins the Python 2 way.
    for name in ("set", "frozenset", "bytearray", "bytes", "complex", "slice"):
        table[("__builtin__", name)] = table[("builtins", name)]
    table[("__builtin__", "xrange")] = range
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{package}.multiarray", "scalar")] = _scalar
        table[(f"{package}.numeric", "_frombuffer")] = _frombuffer
    return table


# Estimated bytes of memory each opcode creates beyond the bytes it reads (which `max_bytes` caps): a set
# is 216 bytes made by one byte of pickle, a list, dict, tuple or mark about 64, a memo entry about 90 (key
# and table slot), an object from an allowed callable about 100; any other opcode a reference and at most a
# small number. Checked against tracemalloc on label-style pickles: the estimate is 2-3x the real use.
_OPCODE_COSTS = {
    **dict.fromkeys(("EMPTY_SET", "FROZENSET"), 232),
    **dict.fromkeys(("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "LIST", "DICT", "TUPLE", "TUPLE1", "TUPLE2",
                     "TUPLE3", "MARK"), 72),
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), 96),
    **dict.fromkeys(("REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD", "INST", "OBJ"), 128),
}
_OPCODE_COST = 32
_COST_BY_KEY = {getattr(pickle, name)[0]: cost for name, cost in _OPCODE_COSTS.items()}


def _charged(handler, cost):
    def charged(self):
        self._memory += cost
        if self._memory > self._max_memory:
            raise PickleLimitError(
                f"{self._source}: the pickle would build more than {_size(self._max_memory)} of objects "
                f"(estimated), the limit for pickle files. If the file is trusted and really this large, raise the "
                f"limit with max_memory=... or {_MAX_MEMORY_VARIABLE}=<bytes>"
            )
        handler(self)

    return charged


# The pure-Python unpickler, because the C one can neither be charged per opcode nor be kept from sizing its
# memo table from an index in the file (a 9-byte pickle with memo index 2**25 takes 512 MB there).
_Base = pickle._Unpickler


def _build(self):
    import numpy as np

    state, instance = self.stack[-1], self.stack[-2]
    if isinstance(instance, np.ndarray):
        _check_array_state(state)
    elif not isinstance(instance, np.dtype):
        _refuse(f"restoring the state of a {type(instance).__name__}")
    _Base.dispatch[pickle.BUILD[0]](self)


class _RestrictedUnpickler(_Base):
    dispatch = {key: _charged(handler, _COST_BY_KEY.get(key, _OPCODE_COST)) for key, handler in _Base.dispatch.items()}
    dispatch[pickle.BUILD[0]] = _charged(_build, _COST_BY_KEY[pickle.BUILD[0]])

    def __init__(self, file, source: str, max_memory: int):
        # latin1 is numpy's advice for Python 2 pickles (their str holds raw array bytes).
        super().__init__(file, encoding="latin1")
        self._source, self._max_memory, self._memory = source, max_memory, 0
        self._globals = _safe_globals()

    def find_class(self, module, name):
        found = self._globals.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self._source}: refused to load `{module}.{name}`; only plain data (dicts, lists, strings, numbers, "
                "numpy arrays) is read from pickle files. Re-export the file with plain data."
            )
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refused a persistent id; only plain data is read from pickle files")


def restricted_load(file, source: str = "<pickle>", max_bytes: int | None = None, max_memory: int | None = None):
    """Unpickles plain data from a binary file object; anything else raises `UnsafePickleError`.

    Args:
        file: a binary file object (a decompressing one is read as a stream).
        source (`str`): how errors name the file.
        max_bytes (`int`, *optional*): most bytes read from `file` (default `BEYONDGLOSS_PICKLE_MAX_BYTES` or
            256 MiB).
        max_memory (`int`, *optional*): most estimated bytes of objects built (default
            `BEYONDGLOSS_PICKLE_MAX_MEMORY` or 2 GiB).

    Raises:
        `UnsafePickleError`: a global other than plain data, or a construct that would allocate from a number.
        `PickleLimitError` (a subclass): the file passes one of the limits.
    """
    max_bytes = _limit(max_bytes, _MAX_BYTES_VARIABLE, DEFAULT_MAX_PICKLE_BYTES)
    max_memory = _limit(max_memory, _MAX_MEMORY_VARIABLE, DEFAULT_MAX_PICKLE_MEMORY)
    unpickler = _RestrictedUnpickler(_CappedReader(file, max_bytes, source), source, max_memory)
    try:
        return unpickler.load()
    except UnsafePickleError as error:
        if str(error).startswith(source):
            raise
        raise type(error)(f"{source}: {error}") from None


def restricted_loads(data: bytes, source: str = "<pickle>", max_bytes: int | None = None,
                     max_memory: int | None = None):
    """`restricted_load` of a bytes object."""
    return restricted_load(io.BytesIO(data), source, max_bytes, max_memory)


def load_pickle_file(path, max_bytes: int | None = None, max_memory: int | None = None):
    """Reads a plain, `.gz` (gzip) or `.lzma`/`.xz` pickle file with the restricted unpickler.

    Compression is recognised from the file's first bytes, so the reference's extension-less
    `labels.train` (gzip) files work too. The limits are those of `restricted_load`.

    Raises:
        `FileNotFoundError`: no regular file at `path`.
        `UnsafePickleError` / `PickleLimitError`: see `restricted_load`.
        `ValueError`: the file cannot be read or is not a valid pickle; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a regular file (a folder, FIFO or device)"
        raise FileNotFoundError(f"{path}: {what}; expected a pickle file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error})") from error
    if head[:2] == b"\x1f\x8b":
        opener = gzip.open
    elif head[:6] == b"\xfd7zXZ\x00" or head[:1] == b"\x5d":
        opener = lzma.open
    else:
        opener = open
    try:
        with opener(path, "rb") as handle:
            return restricted_load(handle, str(path), max_bytes, max_memory)
    except UnsafePickleError:
        raise
    except Exception as error:
        # A malformed pickle makes the unpickler fail in many ways (IndexError on an empty stack, KeyError on a
        # missing memo entry, TypeError from an allowed callable, decompression errors); all mean one thing.
        raise ValueError(f"{path}: not a readable pickle file ({type(error).__name__}: {error})") from error
