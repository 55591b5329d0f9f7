"""msgpack plumbing for :mod:`protocol.wire.frames`: numpy arrays, bounded unpacking, value checks.

Nothing here knows about message types. The pieces are:

* the array extension: a numpy array travels as a msgpack ExtType with code
  :data:`ARRAY_EXT_CODE` whose data is ``[u8 name_len][dtype name][u8 ndim][zero pad to
  8 bytes][ndim x u64 LE dims][raw C-order little-endian bytes]`` (:func:`encode_array`,
  :func:`decode_array`); decoded arrays are read-only, zero-copy views of the ext bytes;
* :func:`scan`, a structural pass over untrusted bytes that allocates nothing and refuses
  truncation, declared lengths past the end, non-string map keys, foreign ext codes, nesting
  deeper than :data:`MAX_DEPTH` and more than :data:`MAX_OBJECTS` objects, before
  :func:`unpack` hands the bytes to ``msgpack.unpackb`` (with explicit limits as well);
* :func:`check_value` for the JSON-like values of ``dict``/``list`` fields, and
  :func:`values_equal` (bitwise for arrays and NaN-aware for floats).

Every failure raises :class:`ProtocolError`.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

import msgpack
import numpy as np

#: msgpack ExtType code of a numpy array.
ARRAY_EXT_CODE = 1
#: dtype names an array may have on the wire.
ALLOWED_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                  "float32", "float64")
#: Most dimensions an array may have.
MAX_NDIM = 4
#: Deepest nesting of msgpack containers in a frame (the frame's own map is level 1).
MAX_DEPTH = 16
#: Most msgpack objects in one frame (map keys included, an array counts as one): bulk
#: numbers belong in numpy arrays, not in lists.
MAX_OBJECTS = 65_536

_BYTE_ORDERS: tuple[Literal["<"], Literal[">"]] = ("<", ">")
_DTYPE_NAMES = {np.dtype(name).newbyteorder(order): name
                for name in ALLOWED_DTYPES for order in _BYTE_ORDERS}  # dtype.name is slow
_WIRE_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in ALLOWED_DTYPES}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_EXTENT_BYTES = 2**62  # numpy refuses shapes whose (zeros-as-one) extent exceeds this
_VALUE_TYPES = "None, bool, int, float, str, numpy array, list or dict"


class ProtocolError(ValueError):
    """A frame or message is malformed; the message says what was wrong."""


class Budget:
    """Countdown of msgpack objects a frame may still hold (see :data:`MAX_OBJECTS`)."""

    def __init__(self, objects: int) -> None:
        self.left = objects

    def take(self, where: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise ProtocolError(f"{where}: frame holds more than {MAX_OBJECTS} msgpack "
                                "objects; send bulk numbers as numpy arrays")


# --- arrays -------------------------------------------------------------------------------

def check_array(arr: np.ndarray, where: str) -> str:
    """The dtype name of ``arr``; raise unless it may travel: allowed dtype (either byte
    order), at most :data:`MAX_NDIM` dims."""
    if isinstance(arr, np.ma.MaskedArray):
        raise ProtocolError(f"{where}: masked arrays cannot travel; send data and mask")
    name = _DTYPE_NAMES.get(arr.dtype)
    if name is None:
        raise ProtocolError(f"{where}: dtype {arr.dtype.name!r} is not allowed "
                            f"(allowed: {', '.join(ALLOWED_DTYPES)})")
    if arr.ndim > MAX_NDIM:
        raise ProtocolError(f"{where}: array has {arr.ndim} dimensions, at most "
                            f"{MAX_NDIM} may travel")
    return name


def _array_head(name: str, ndim: int) -> bytes:
    """The header of an array of dtype ``name`` and ``ndim`` dims, up to (not including)
    its dims: ``[u8 name_len][name][u8 ndim][zero pad to 8 bytes]``."""
    head = bytes([len(name)]) + name.encode("ascii") + bytes([ndim])
    return head + bytes(-len(head) % 8)


#: Per dims count, the ``struct`` of its dims (u64 LE each).
_DIMS = tuple(struct.Struct(f"<{ndim}Q") for ndim in range(MAX_NDIM + 1))
#: (little-endian or byte-order-free dtype, ndim) -> header: the hot path's lookup, so that
#: an array of an allowed dtype costs one dict probe instead of the checks of check_array.
_ENCODE_HEADS = {(np.dtype(name).newbyteorder("<"), ndim): _array_head(name, ndim)
                 for name in ALLOWED_DTYPES for ndim in range(MAX_NDIM + 1)}
#: header -> (dtype, ndim, offset of the dims): what :func:`decode_array` accepts at once.
_DECODE_HEADS = {head: (_WIRE_DTYPES[name], ndim, len(head))
                 for (_, ndim), head in _ENCODE_HEADS.items()
                 for name in [head[1:1 + head[0]].decode("ascii")]}


def encode_array(arr: np.ndarray) -> bytes:
    """The ext data of ``arr`` (header + raw C-order little-endian bytes)."""
    head = _ENCODE_HEADS.get((arr.dtype, arr.ndim)) if type(arr) is np.ndarray else None
    if head is not None:  # an allowed dtype, already little-endian: no conversion
        return head + _DIMS[arr.ndim].pack(*arr.shape) + arr.tobytes(order="C")
    name = check_array(arr, "array")
    raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
    return _array_head(name, arr.ndim) + _DIMS[arr.ndim].pack(*arr.shape) + raw


#: Most distinct empty arrays :func:`decode_array` keeps (see there).
_EMPTY_CACHE_SIZE = 256
_EMPTY: dict[bytes, np.ndarray] = {}


def decode_array(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_array`: a read-only array viewing ``data`` (no copy; the
    unpacker passes a private ``bytes`` object, so nothing else can change it).

    An empty array (most of a frame's optional fields) is one shared read-only object per
    header: it holds no data, so sharing it changes nothing, and one dict probe replaces
    the header checks (up to :data:`_EMPTY_CACHE_SIZE` distinct ones are kept)."""
    size = len(data)
    if size <= 48 and type(data) is bytes and (cached := _EMPTY.get(data)) is not None:  # 48: header + 4 dims
        return cached
    # The common case in one dict probe: a well-formed header and a byte count that
    # matches the shape. Anything else takes the checks below, which raise.
    entry = _DECODE_HEADS.get(bytes(data[:16 if data[0] > 6 else 8])) if size else None
    if entry is not None:
        dtype, ndim, dims_at = entry
        raw_at = dims_at + 8 * ndim
        if size >= raw_at:
            shape = _DIMS[ndim].unpack_from(data, dims_at)
            count = math.prod(shape)
            if (count * dtype.itemsize == size - raw_at
                    and (count or math.prod(d or 1 for d in shape) * dtype.itemsize
                         <= _MAX_EXTENT_BYTES)
                    and (dtype.kind != "b" or not count
                         or np.frombuffer(data, np.uint8, count, raw_at).max() <= 1)):
                arr = np.frombuffer(data, dtype, count, raw_at).reshape(shape)
                arr.flags.writeable = False
                if not count and size <= 48 and len(_EMPTY) < _EMPTY_CACHE_SIZE:
                    _EMPTY[bytes(data)] = arr
                return arr
    return _decode_array_checked(data, size)


def _decode_array_checked(data: bytes, size: int) -> np.ndarray:
    """:func:`decode_array` with every check and its error message."""
    name_len = data[0] if size else 0
    if not 1 <= name_len <= 7 or size < 2 + name_len:
        raise ProtocolError("array header is truncated or has a bad dtype name length")
    name = data[1:1 + name_len].decode("ascii", errors="replace")
    dtype = _WIRE_DTYPES.get(name)
    if dtype is None:
        raise ProtocolError(f"array dtype {name!r} is not allowed "
                            f"(allowed: {', '.join(ALLOWED_DTYPES)})")
    ndim = data[1 + name_len]
    if ndim > MAX_NDIM:
        raise ProtocolError(f"array has {ndim} dimensions, at most {MAX_NDIM} may travel")
    start = -(-(2 + name_len) // 8) * 8
    raw_at = start + 8 * ndim
    if size < raw_at or any(data[2 + name_len:start]):
        raise ProtocolError("array header is truncated or its padding is not zero")
    shape = _DIMS[ndim].unpack_from(data, start)
    if math.prod(d or 1 for d in shape) * dtype.itemsize > _MAX_EXTENT_BYTES:
        raise ProtocolError(f"array shape {shape} is absurdly large")
    count = math.prod(shape)
    if count * dtype.itemsize != size - raw_at:
        raise ProtocolError(f"array of dtype {name} and shape {shape} needs "
                            f"{count * dtype.itemsize} bytes, the frame carries {size - raw_at}")
    if name == "bool" and count and np.frombuffer(data, np.uint8, count, raw_at).max() > 1:
        raise ProtocolError("bool array holds bytes other than 0 and 1")
    arr = np.frombuffer(data, dtype, count, raw_at).reshape(shape)
    arr.flags.writeable = False  # already so for bytes; also for a caller's bytearray
    return arr


# --- packing and unpacking ----------------------------------------------------------------

def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(ARRAY_EXT_CODE, encode_array(obj))
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} cannot travel (use {_VALUE_TYPES})")


def pack(obj: Any) -> bytes:
    """msgpack ``obj``; numpy arrays become array exts, numpy scalars Python scalars."""
    packed: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return packed


def _ext_hook(code: int, data: bytes) -> np.ndarray:
    if code != ARRAY_EXT_CODE:  # scan() refuses these first; kept as a second guard
        raise ProtocolError(f"unknown msgpack ext code {code}")
    return decode_array(data)


_FIXED = {0xc0: 0, 0xc2: 0, 0xc3: 0, 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8,
          0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}
_FIXEXT = {0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16}
_SIZED = {0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4}  # bin, str: length bytes
_EXT = {0xc7: 1, 0xc8: 2, 0xc9: 4}
_ARRAY = {0xdc: 2, 0xdd: 4}
_MAP = {0xde: 2, 0xdf: 4}
_STR_HEADS = frozenset(range(0xa0, 0xc0)) | {0xd9, 0xda, 0xdb}


def scan(data: bytes | bytearray | memoryview, *, max_depth: int = MAX_DEPTH,
         max_objects: int = MAX_OBJECTS) -> None:
    """Check the msgpack structure of ``data`` without building any object.

    Refuses truncation, trailing bytes, lengths that run past the end, non-string map keys,
    ext codes other than :data:`ARRAY_EXT_CODE`, more than ``max_depth`` nested containers
    and more than ``max_objects`` objects. Costs O(number of objects), not O(bytes).
    """
    end, pos, objects = len(data), 0, 0
    stack = [[1, False]]  # per open container: objects still to read, is it a map
    while stack:
        top = stack[-1]
        if top[0] == 0:
            stack.pop()
            continue
        is_key = top[1] and top[0] % 2 == 0
        top[0] -= 1
        objects += 1
        if objects > max_objects:
            raise ProtocolError(f"frame holds more than {max_objects} msgpack objects")
        if pos >= end:
            raise ProtocolError(f"frame is truncated at byte {pos}")
        head = data[pos]
        pos += 1
        if is_key and head not in _STR_HEADS:
            raise ProtocolError(f"map key at byte {pos - 1} is not a string")
        skip, count, is_map = 0, -1, False
        if head <= 0x7f or head >= 0xe0:
            continue
        if head <= 0x8f:
            count, is_map = 2 * (head & 0x0f), True
        elif head <= 0x9f:
            count = head & 0x0f
        elif head <= 0xbf:
            skip = head & 0x1f
        elif head in _FIXED:
            skip = _FIXED[head]
        elif head in _FIXEXT or head in _EXT:
            width = _EXT.get(head, 0)
            length = _FIXEXT[head] if head in _FIXEXT else int.from_bytes(
                data[pos:pos + width], "big")
            if pos + width + 1 > end:
                raise ProtocolError(f"frame is truncated in an ext header at byte {pos}")
            code = int.from_bytes(data[pos + width:pos + width + 1], "big", signed=True)
            if code != ARRAY_EXT_CODE:
                raise ProtocolError(f"unknown msgpack ext code {code} at byte {pos - 1}")
            pos, skip = pos + width + 1, length
        else:
            width = _SIZED.get(head) or _ARRAY.get(head) or _MAP.get(head, 0)
            if width == 0:
                raise ProtocolError(f"byte 0x{head:02x} at {pos - 1} is not valid msgpack")
            if pos + width > end:
                raise ProtocolError(f"frame is truncated in a length at byte {pos}")
            length = int.from_bytes(data[pos:pos + width], "big")
            pos += width
            if head in _SIZED:
                skip = length
            else:
                count, is_map = (2 * length, True) if head in _MAP else (length, False)
        if count >= 0:
            if count > end - pos:  # every object takes at least one byte
                raise ProtocolError(f"container at byte {pos} declares {count} objects, "
                                    f"only {end - pos} bytes remain")
            stack.append([count, is_map])
            if len(stack) - 1 > max_depth:
                raise ProtocolError(f"frame nests containers deeper than {max_depth}")
        elif pos + skip > end:
            raise ProtocolError(f"value at byte {pos} declares {skip} bytes, "
                                f"only {end - pos} remain")
        else:
            pos += skip
    if pos != end:
        raise ProtocolError(f"{end - pos} trailing bytes after the frame")


def unpack(data: bytes | bytearray | memoryview, max_bytes: int) -> Any:
    """:func:`scan` then ``msgpack.unpackb`` with explicit limits; arrays are decoded.

    The caller has already refused ``data`` longer than ``max_bytes`` (``unpackb`` has no
    ``max_buffer_size``: its buffer is ``data`` itself).
    """
    scan(data)
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, ext_hook=_ext_hook, timestamp=0,
            max_str_len=max_bytes, max_bin_len=max_bytes, max_ext_len=max_bytes,
            max_array_len=MAX_OBJECTS, max_map_len=MAX_OBJECTS)
    except ProtocolError:
        raise
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"frame is not valid msgpack: {exc}") from exc


def peek_version(data: bytes | bytearray | memoryview) -> int | None:
    """The protocol version of a frame whose first map entry is ``"v"`` (every version)."""
    heads = {0xde: 3, 0xdf: 5}
    pos = 1 if data and 0x80 <= data[0] <= 0x8f else heads.get(data[0] if data else -1, 0)
    if pos == 0 or bytes(data[pos:pos + 2]) != b"\xa1v" or len(data) <= pos + 2:
        return None
    head = data[pos + 2]
    if head <= 0x7f:
        return head
    width = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}.get(head, 0)
    if width and len(data) >= pos + 3 + width:
        return int.from_bytes(data[pos + 3:pos + 3 + width], "big")
    return None


# --- values of dict / list fields ---------------------------------------------------------

def check_int(value: int, where: str) -> None:
    """Raise unless ``value`` fits in int64 (what msgpack and numpy index with)."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ProtocolError(f"{where}: integer {value} does not fit in int64")


def check_str(value: str, where: str) -> None:
    """Raise unless ``value`` can be encoded as UTF-8 (no lone surrogates)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ProtocolError(f"{where}: string is not valid UTF-8 ({exc.reason})") from exc


def check_value(value: Any, where: str, depth: int, budget: Budget) -> None:
    """Raise unless ``value`` (a dict/list field or inside one) may travel.

    ``depth`` is the msgpack nesting level ``value`` would have (a field of the frame's map
    is at level 2); containers deeper than :data:`MAX_DEPTH` and frames of more than
    :data:`MAX_OBJECTS` objects (counted in ``budget``) are refused, as :func:`scan` does.
    """
    budget.take(where)
    if value is None or isinstance(value, (bool, np.bool_, float, np.floating)):
        return
    if isinstance(value, (int, np.integer)):
        check_int(int(value), where)
    elif isinstance(value, str):
        check_str(value, where)
    elif isinstance(value, np.ndarray):
        check_array(value, where)
    elif isinstance(value, (dict, list)):
        if depth > MAX_DEPTH:
            raise ProtocolError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_value(item, f"{where}[{i}]", depth + 1, budget)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(f"{where}: key {key!r} is not a str")
            check_str(key, where)
            budget.take(where)
            check_value(item, f"{where}[{key!r}]", depth + 1, budget)
    else:
        raise ProtocolError(f"{where}: {type(value).__name__} cannot travel "
                            f"(use {_VALUE_TYPES})")


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    return type(value).__name__


def values_equal(a: Any, b: Any) -> bool:
    """Equality of wire values: arrays by dtype, shape and bits; NaN equals NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.shape == b.shape
                and encode_array(a) == encode_array(b))
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, np.floating)) and a != a:
        return bool(b != b)
    return bool(a == b)
