"""The codec's quick paths (issue 14) decide exactly as the full checks do.

``decode_array`` accepts a well-formed array with one dict probe, ``encode_array`` writes a
little-endian array without conversion, and a message's fields are first tested by quick
acceptors. Each must agree with the full path it shortcuts: the same array, or the same
:class:`ProtocolError` with the same message, for any input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.wire import codec
from protocol.wire.codec import ALLOWED_DTYPES, MAX_NDIM, ProtocolError
from protocol.wire.frames import Heartbeat, Round, Tx, decode, encode
from protocol.wire.message import _check_field


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return "ok", fn(*args)
    except ProtocolError as exc:
        return "error", str(exc)


def _same(a: tuple[str, object], b: tuple[str, object]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "error":
        return a[1] == b[1]
    x, y = a[1], b[1]
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("name", ALLOWED_DTYPES)
@pytest.mark.parametrize("order", ["<", ">"])
def test_every_dtype_and_rank_encodes_to_the_documented_layout(name: str, order: str) -> None:
    for shape in [(), (3,), (2, 0), (1, 2, 3), (2, 1, 1, 2)]:
        arr = (np.arange(int(np.prod(shape))) % 2).astype(np.dtype(name).newbyteorder(order))  # type: ignore[arg-type]
        arr = arr.reshape(shape)
        data = codec.encode_array(arr)
        head = bytes([len(name)]) + name.encode() + bytes([arr.ndim])
        head += bytes(-len(head) % 8)
        dims = b"".join(int(d).to_bytes(8, "little") for d in shape)
        assert data == head + dims + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        back = codec.decode_array(data)
        assert back.shape == shape and np.array_equal(back, arr) and not back.flags.writeable


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(ALLOWED_DTYPES), ndim=st.integers(0, MAX_NDIM),
       seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 10_000), max_size=4),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_quick_decode_agrees_with_the_full_checks(name: str, ndim: int, seed: int,
                                                  cuts: list[int],
                                                  flips: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(0, 4, ndim))
    arr = rng.integers(0, 2, shape).astype(name)
    data = bytearray(codec.encode_array(arr))
    for at, value in flips:  # corrupt header and body bytes alike
        if data:
            data[at % len(data)] = value
    for cut in cuts:
        del data[cut % (len(data) + 1):]
    raw = bytes(data)
    quick = _outcome(codec.decode_array, raw)
    full = _outcome(codec._decode_array_checked, raw, len(raw))
    assert _same(quick, full), (raw, quick, full)


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=True),
    st.text(max_size=4), st.builds(np.int32, st.integers(-5, 5)), st.builds(np.float32, st.floats(-1, 1)),
    st.builds(np.bool_, st.booleans()),
    st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.floats(), st.none(),
                    st.dictionaries(st.text(max_size=2), st.integers(-(2**64), 2**64), max_size=3)),
                    max_size=4),
    st.builds(lambda n, d: np.zeros(n, dtype=d), st.integers(0, 3),
              st.sampled_from(["int32", "int8", "float32", "float64", "bool", ">i4", "complex64"])),
)


@settings(max_examples=600, deadline=None)
@given(cls=st.sampled_from([Round, Tx, Heartbeat]), data=st.data())
def test_quick_field_checks_agree_with_the_full_checks(cls: type, data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(cls._FIELDS))
    value = data.draw(_VALUES)
    full = _outcome(_check_field, cls.TYPE, spec, value, codec.Budget(codec.MAX_OBJECTS))
    accept = dict(cls._ACCEPT)[spec.name]
    if accept(value):  # accepted as it is: the full check must pass it unchanged
        assert full[0] == "ok" and full[1] is value


def test_a_frame_accepted_quickly_still_counts_its_objects() -> None:
    # A stats map with more keys than MAX_OBJECTS allows must still be refused, with the
    # full path's message, at the sender and at the receiver.
    big = {f"k{i}": i for i in range(codec.MAX_OBJECTS // 2)}
    fields = dict(exchange=0, device=0, series_items=np.zeros(0, np.int32),
                  series=np.zeros((0, 4), np.int8), labels=np.zeros(0, np.int16),
                  logits_items=np.zeros(0, np.int32), logits=np.zeros((0, 2), np.float32))
    with pytest.raises(ProtocolError, match="more than 65536 msgpack objects"):
        Tx(stats=big, **fields)  # type: ignore[arg-type]
    raw = encode(Tx.build(stats=big, **fields))
    with pytest.raises(ProtocolError, match="more than 65536 msgpack objects"):
        decode(raw)


def test_empty_arrays_decode_to_one_shared_read_only_object_per_header() -> None:
    from protocol.wire.codec import decode_array, encode_array

    for arr in (np.zeros((0, 3), np.float32), np.zeros(0, np.int32), np.zeros((2, 0, 4), np.int8)):
        wire = encode_array(arr)
        first, again = decode_array(wire), decode_array(bytes(bytearray(wire)))
        assert first is again and first.shape == arr.shape and first.dtype == arr.dtype
        assert not first.flags.writeable
        assert decode_array(bytearray(wire)).shape == arr.shape  # not only bytes
    full = encode_array(np.arange(3, dtype=np.int16))
    assert decode_array(full) is not decode_array(full)  # data-bearing arrays stay private views
