"""Wire format (protocol/wire/frames.py, protocol/wire/codec.py): round trips, strict validation, and
a decoder that answers anything untrusted with ProtocolError only."""

from __future__ import annotations

import dataclasses
import random
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocol.wire import codec
from protocol.wire import frames
from protocol.wire import message
from protocol.wire.frames import (
    CONTROL_MAX_BYTES, DEFAULT_MAX_BYTES, PROTOCOL_VERSION, Bye, Control, ControlReply, Error,
    FeedEvent, FeedRound, Final, Heartbeat, Hello, Message, ProtocolError, Round, Rx, Stop, Tx,
    VersionMismatch, Welcome, array_field, decode, encode, message_types, register)

# --- strategies ---------------------------------------------------------------------------

I64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=12)
DTYPES = st.sampled_from(codec.ALLOWED_DTYPES).flatmap(
    lambda name: st.sampled_from([np.dtype(name), np.dtype(name).newbyteorder(">")]))
ANY_ARRAY = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                max_side=3))
SCALARS = st.none() | st.booleans() | I64 | st.floats() | TEXT
VALUES = st.recursive(SCALARS | ANY_ARRAY, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
DICTS = st.dictionaries(TEXT, VALUES, max_size=4)
SIZE = st.integers(0, 4)


def arr(dtype: str, shape: Any) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.dtype(dtype), shape)


@st.composite
def series_part(draw: st.DrawFn) -> dict[str, np.ndarray]:
    k, length, m = draw(SIZE), draw(SIZE), draw(SIZE)
    return {"series_items": draw(arr("int32", k)), "series": draw(arr("int8", (k, length))),
            "labels": draw(arr("int16", k)), "logits_items": draw(arr("int32", m))}


@st.composite
def grad_part(draw: st.DrawFn, c: int, m: int) -> dict[str, np.ndarray]:
    """Private-labels g rows (classes must match the logits' when both have rows)."""
    k = draw(SIZE)
    cg = c if (k and m) else draw(SIZE)
    return {"grad_items": draw(arr("int32", k)), "grads": draw(arr("float32", (k, cg)))}


@st.composite
def tx(draw: st.DrawFn) -> Tx:
    part = draw(series_part())
    m, c = len(part["logits_items"]), draw(SIZE)
    return Tx(exchange=draw(I64), device=draw(I64), logits=draw(arr("float32", (m, c))),
              stats=draw(DICTS), sync_payload=draw(arr("uint8", draw(SIZE))),
              **draw(grad_part(c, m)), **part)


@st.composite
def rx(draw: st.DrawFn) -> Rx:
    part = draw(series_part())
    m, n, c = len(part["logits_items"]), draw(SIZE), draw(SIZE)
    j = draw(SIZE)
    return Rx(exchange=draw(I64), logits=draw(arr("float32", (m, n, c))),
              logits_mask=draw(arr("bool", (m, n))),
              sync_sources=draw(arr("int32", j)), sync_payloads=draw(arr("uint8", (j, draw(SIZE)))),
              **draw(grad_part(c, m)), **part)


@st.composite
def welcome(draw: st.DrawFn) -> Welcome:
    n = draw(st.integers(1, 300))
    return Welcome(device=draw(st.integers(0, n - 1)), n_devices=n, config=draw(DICTS),
                   shard=draw(st.dictionaries(TEXT, ANY_ARRAY, max_size=3)))


@st.composite
def round_(draw: st.DrawFn) -> Round:
    s, lg = sorted(draw(st.lists(I64, min_size=2, max_size=2))), sorted(
        draw(st.lists(I64, min_size=2, max_size=2)))
    g = sorted(draw(st.lists(I64, min_size=2, max_size=2)))
    return Round(draw(I64), s[0], s[1], lg[0], lg[1], g[0], g[1],
                 draw(st.integers(-1, 2**63 - 1)))


@st.composite
def final(draw: st.DrawFn) -> Final:
    c, f = draw(SIZE), draw(SIZE)
    return Final(device=draw(I64), weights=draw(arr("float32", (c, f))),
                 bias=draw(arr("float32", draw(st.sampled_from([0, c])))), stats=draw(DICTS))


STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Hello: st.builds(Hello, TEXT, I64, I64),
    Welcome: welcome(),
    Round: round_(),
    Tx: tx(),
    Rx: rx(),
    Heartbeat: st.builds(Heartbeat, I64, I64),
    Bye: st.builds(Bye, I64, TEXT),
    Stop: st.builds(Stop, TEXT),
    Final: final(),
    Error: st.builds(Error, TEXT, TEXT),
    Control: st.builds(Control, TEXT, DICTS),
    ControlReply: st.builds(ControlReply, st.booleans(), TEXT, I64, DICTS),
    FeedRound: st.builds(FeedRound, I64, DICTS),
    FeedEvent: st.builds(FeedEvent, I64, TEXT, DICTS),
}


def test_every_message_type_is_registered_and_has_a_strategy() -> None:
    expected = {"HELLO", "WELCOME", "ROUND", "TX", "RX", "HEARTBEAT", "BYE", "STOP", "FINAL",
                "ERROR", "CONTROL", "CONTROL_REPLY", "FEED_ROUND", "FEED_EVENT"}
    assert set(message_types()) == expected
    assert {cls.TYPE for cls in STRATEGIES} == expected


def _arrays_in(value: Any) -> Iterator[np.ndarray]:
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _arrays_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _arrays_in(item)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.TYPE)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    wire = encode(msg)
    back = decode(wire, expect=cls)
    assert type(back) is cls
    assert back == msg
    assert encode(back) == wire  # byte-stable: big-endian inputs travel little-endian
    for field in dataclasses.fields(msg):
        for a in _arrays_in(getattr(back, field.name)):
            assert not a.flags.writeable and a.dtype.byteorder in "=|<"


def test_equality_sees_every_difference() -> None:
    base = FeedRound(3, {"a": [1, 2.0, np.arange(3, dtype=np.int16)], "f": True})
    assert base == FeedRound(3, {"a": [1, 2.0, np.arange(3, dtype=np.int16)], "f": True})
    for other in (FeedRound(4, base.data), FeedRound(3, {**base.data, "f": 1}),
                  FeedRound(3, {**base.data, "a": [1, 2, np.arange(3, dtype=np.int16)]}),
                  FeedRound(3, {**base.data, "a": [1, 2.0, np.arange(3, dtype=np.int32)]}),
                  FeedRound(3, {**base.data, "a": [1, 2.0, np.arange(3, dtype=np.int16)[::-1]]})):
        assert base != other
    nan = FeedRound(0, {"x": float("nan"), "y": np.array([np.nan], np.float32)})
    assert decode(encode(nan)) == nan


def test_non_contiguous_and_big_endian_arrays_travel_as_c_order_little_endian() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    for variant in (base[:, ::2], base.T, base.astype(">f8")):
        back = decode(encode(FeedRound(0, {"a": variant}))).data["a"]
        np.testing.assert_array_equal(back, variant)
        assert back.flags.c_contiguous and back.dtype == np.dtype("<f8")


# --- examples and fuzzing -----------------------------------------------------------------

def examples() -> list[Message]:
    """One realistic message of every type (the fuzz corpus)."""
    g = np.random.default_rng(7)
    stats = {"energy_mj": 1.25, "slots": [3, 4, 5], "ok": True, "note": None,
             "nested": {"hist": g.integers(0, 9, 6).astype(np.uint16), "d": {"x": -1}}}
    k, m, n, c = 2, 3, 4, 5
    series = {"series_items": np.arange(k, dtype=np.int32),
              "series": g.integers(-128, 128, (k, 8)).astype(np.int8),
              "labels": np.arange(k, dtype=np.int16), "logits_items": np.arange(m, dtype=np.int32)}
    return [
        Hello("node-3", 4242),
        Welcome(3, 20, {"seed": 1, "radio": {"kind": "mixer", "prr": 0.9}},
                {"x": g.integers(-128, 128, (6, 8)).astype(np.int8),
                 "y": np.arange(6, dtype=np.int16)}),
        Round(5, 10, 14, 9, 13),
        Tx(5, 3, logits=g.standard_normal((m, c)).astype(np.float32), stats=stats,
           grad_items=np.arange(2, dtype=np.int32), grads=g.standard_normal((2, c)).astype(np.float32),
           sync_payload=g.integers(0, 256, 16).astype(np.uint8), **series),
        Rx(5, logits=g.standard_normal((m, n, c)).astype(np.float32),
           logits_mask=g.random((m, n)) < 0.8,
           grad_items=np.arange(2, dtype=np.int32), grads=g.standard_normal((2, c)).astype(np.float32),
           sync_sources=np.arange(2, dtype=np.int32),
           sync_payloads=g.integers(0, 256, (2, 16)).astype(np.uint8), **series),
        Heartbeat(3, 5), Bye(3, "stopped"), Stop("done"),
        Final(0, g.standard_normal((c, 7)).astype(np.float32), np.zeros(c, np.float32), stats),
        Error("bad_config", "n_devices must be >= 1"),
        Control("set_loss", {"link": [1, 2], "p": 0.3}),
        ControlReply(True, "applied", 12, {"round": 12}),
        FeedRound(12, {"acc": 0.5, "energy": np.ones(4, np.float64)}),
        FeedEvent(12, "node_down", {"device": 3}),
    ]


_SENTINEL = msgpack.ExtType(99, b"SENTINEL")
_SENTINEL_BYTES = msgpack.packb(_SENTINEL)
_POISON: list[Any] = [
    True, False, 1, -1, 0, 2**63, 2**64 - 1, -(2**63), 1.5, float("nan"), "x", "", None, [],
    {}, [1, [2, [3]]], {"a": {"b": None}}, b"\x00bytes", msgpack.ExtType(1, b""),
    msgpack.ExtType(1, b"\x04int8\x01"), msgpack.ExtType(7, b"x"), msgpack.Timestamp(1, 0),
    "é" * 300]
_HUGE_HEADS = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
               b"\xc9\xff\xff\xff\xff\x01", b"\xdb\x7f\xff\xff\xff", b"\xde\xff\xff",
               b"\xdc\xff\xff", b"\xda\xff\xff"]


def _raw(wire: bytes) -> dict[str, Any]:
    return msgpack.unpackb(wire, raw=False, strict_map_key=False)


def _pack(obj: Any, key: str | None = None, raw_value: bytes = b"") -> bytes:
    """msgpack ``obj``; with ``key``, that entry's value becomes the bytes ``raw_value``."""
    if key is None:
        return msgpack.packb(obj, use_bin_type=True)
    wire = msgpack.packb({**obj, key: _SENTINEL}, use_bin_type=True)
    return wire.replace(_SENTINEL_BYTES, raw_value, 1)


def _array_ext(name: bytes, shape: tuple[int, ...], raw: bytes) -> msgpack.ExtType:
    head = bytes([len(name)]) + name + bytes([len(shape)])
    head += bytes(-len(head) % 8) + struct.pack(f"<{len(shape)}Q", *shape)
    return msgpack.ExtType(codec.ARRAY_EXT_CODE, head + raw)


def _ext_fields(obj: dict[str, Any]) -> list[str]:
    return [k for k, v in obj.items() if isinstance(v, msgpack.ExtType)]


Mutation = Callable[[random.Random, bytes, list[bytes]], bytes]


def m_bit_flips(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    b = bytearray(w)
    for _ in range(r.randint(1, 4)):
        b[r.randrange(len(b))] ^= 1 << r.randrange(8)
    return bytes(b)


def m_truncate(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    return w[:r.randrange(len(w))]


def m_splice(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    other = r.choice(corpus)
    return w[:r.randrange(len(w))] + other[r.randrange(len(other)):]


def m_insert_delete(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    i = r.randrange(len(w))
    if r.random() < 0.5:
        return w[:i] + bytes(r.randrange(256) for _ in range(r.randint(1, 8))) + w[i:]
    return w[:i] + w[i + r.randint(1, 8):]


def m_field_swap(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    a, b = r.sample(sorted(obj), 2)
    obj[a], obj[b] = obj[b], obj[a]
    return _pack(obj)


def m_wrong_type(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    obj[r.choice(sorted(obj))] = r.choice(_POISON)
    return _pack(obj)


def m_envelope(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    choice = r.randrange(5)
    if choice == 0:
        obj["t"] = r.choice([*message_types(), "NOPE", "", "hello"])
    elif choice == 1:
        del obj[r.choice(sorted(obj))]
    elif choice == 2:
        obj[r.choice(["extra", "v2", "T"])] = 1
    elif choice == 3:
        obj = {"t": obj.pop("t"), **obj}  # "v" no longer first
    else:
        return w + _pack(1)  # trailing data
    return _pack(obj)


def m_bad_array(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    fields = _ext_fields(obj) or sorted(obj)
    name = r.choice([b"float16", b"object", b"<f4", b"complex", b"", b"int8\0", b"float32x",
                     b"bool", b"float64", bytes(r.randrange(256) for _ in range(5))])
    ndim = r.randint(0, 6)
    shape = tuple(r.choice([0, 1, 3, 2**31, 2**40, 2**63, 2**64 - 1]) for _ in range(ndim))
    raw = bytes(r.randrange(256) for _ in range(r.choice([0, 1, 8, 24])))
    ext = _array_ext(name, shape, raw)
    if r.random() < 0.3:  # damage the header itself
        data = bytearray(ext.data)
        data[r.randrange(len(data))] = r.randrange(256)
        ext = msgpack.ExtType(ext.code, bytes(data[:r.randint(0, len(data))]))
    obj[r.choice(fields)] = ext
    return _pack(obj)


def m_shape_mismatch(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    fields = _ext_fields(obj)
    if not fields:
        return m_bad_array(r, w, corpus)
    key = r.choice(fields)
    a = codec.decode_array(obj[key].data)
    shape = list(a.shape) or [1]
    shape[r.randrange(len(shape))] += r.choice([-1, 1, 2**32])
    new_shape = tuple(max(0, d) for d in shape) if r.random() < 0.5 else a.shape[::-1]
    raw = a.tobytes()[:r.choice([len(a.tobytes()), max(0, a.nbytes - 1)])]
    obj[key] = _array_ext(a.dtype.name.encode(), new_shape, raw)
    return _pack(obj)


def m_huge_length(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    i = r.randrange(len(w))
    if r.random() < 0.5:
        return w[:i] + r.choice(_HUGE_HEADS) + w[i:]
    head = r.choice(_HUGE_HEADS)
    return w[:i] + head + w[i + len(head):]


def m_deep(r: random.Random, w: bytes, corpus: list[bytes]) -> bytes:
    obj = _raw(w)
    depth = r.choice([15, 16, 17, 100, 5000])
    heads = [b"\x91", b"\x81\xa1k"] if r.random() < 0.5 else [b"\x91"]
    raw = b"".join(r.choice(heads) for _ in range(depth)) + b"\xc0"
    return _pack(obj, r.choice(sorted(obj)), raw)


MUTATIONS: list[Mutation] = [m_bit_flips, m_truncate, m_splice, m_insert_delete, m_field_swap,
                             m_wrong_type, m_envelope, m_bad_array, m_shape_mismatch,
                             m_huge_length, m_deep]


def _decode_or_refuse(data: bytes) -> Message | None:
    try:
        return decode(data)
    except ProtocolError as exc:
        assert str(exc)
        return None
    except Exception as exc:  # noqa: BLE001 - the property under test
        pytest.fail(f"decode raised {type(exc).__name__}: {exc} on {data[:120]!r}")


@pytest.mark.timeout(120)
def test_fuzz_raises_only_protocol_error() -> None:
    r = random.Random(20251015)
    corpus = [encode(m) for m in examples()]
    starts = [c[:r.randint(1, 12)] for c in corpus]  # to reach past the first byte often
    cases: list[tuple[str, bytes]] = []
    for i in range(10_000):
        junk = bytes(r.randrange(256) for _ in range(r.randint(0, 160)))
        cases.append(("random", (r.choice(starts) + junk) if i % 2 else junk))
    for i in range(10_000):
        mutation = MUTATIONS[i % len(MUTATIONS)]
        cases.append((mutation.__name__, mutation(r, r.choice(corpus), corpus)))
    refused = dict.fromkeys(["random", *(m.__name__ for m in MUTATIONS)], 0)
    worst_s, t0 = 0.0, time.perf_counter()
    for kind, data in cases:
        t = time.perf_counter()
        msg = _decode_or_refuse(data)
        worst_s = max(worst_s, time.perf_counter() - t)
        if msg is None:
            refused[kind] += 1
        else:  # whatever is accepted is a valid message: it re-encodes to the same message
            assert decode(encode(msg)) == msg
    total_s = time.perf_counter() - t0
    print(f"\nfuzz: {len(cases)} frames in {total_s:.2f} s, worst {worst_s * 1e3:.2f} ms, "
          f"refused per kind {refused}")
    assert all(refused.values()), refused  # every kind of damage is caught at least once
    assert refused["random"] > 9_900
    assert worst_s < 1.0  # nothing comes close to a hang


# --- limits -------------------------------------------------------------------------------

def test_oversize_frame_is_refused_before_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = encode(Welcome(0, 1, {}, {"x": np.zeros(300_000, np.int8)}))
    calls: list[str] = []
    real_unpackb, real_scan = codec.msgpack.unpackb, codec.scan
    monkeypatch.setattr(codec.msgpack, "unpackb", lambda *a, **k: calls.append("unpackb"))
    monkeypatch.setattr(codec, "scan", lambda *a, **k: calls.append("scan"))
    with pytest.raises(ProtocolError, match=r"frame of \d+ bytes exceeds the limit of 262144"):
        decode(wire, max_bytes=256 * 1024)
    assert calls == []
    monkeypatch.setattr(codec.msgpack, "unpackb", real_unpackb)
    monkeypatch.setattr(codec, "scan", real_scan)
    assert decode(wire).shard["x"].shape == (300_000,)


def _peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
    except ProtocolError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_huge_declared_lengths_are_refused_without_allocation() -> None:
    frame = _raw(encode(Welcome(0, 1, {}, {})))
    frame["shard"] = {"x": _array_ext(b"float64", (2**28,), b"")}  # declares 2 GiB
    cases = [
        _pack(frame),
        b"\xdd\xff\xff\xff\xff",  # array of 4 G objects
        b"\xdf\xff\xff\xff\xff",  # map of 4 G entries
        _pack(frame, "config", b"\xc6\x7f\xff\xff\xff"),  # bin of 2 GiB
        _pack(frame, "config", b"\xc9\x7f\xff\xff\xff\x01"),  # ext of 2 GiB
    ]
    for wire in cases:
        t = time.perf_counter()
        with pytest.raises(ProtocolError):
            decode(wire)
        assert time.perf_counter() - t < 0.1
        assert _peak_bytes(lambda wire=wire: decode(wire)) < 256 * 1024
    with pytest.raises(ProtocolError, match=r"needs 2147483648 bytes, the frame carries 0"):
        decode(cases[0])


def test_control_limit_and_encode_limit() -> None:
    msg = Control("load", {"blob": np.zeros(100_000, np.uint8)})
    wire = encode(msg)
    assert decode(wire) == msg
    with pytest.raises(ProtocolError, match="exceeds the limit of 65536"):
        decode(wire, max_bytes=CONTROL_MAX_BYTES)
    with pytest.raises(ProtocolError, match="over the limit of 65536"):
        encode(msg, max_bytes=CONTROL_MAX_BYTES)
    assert DEFAULT_MAX_BYTES == 16 * 2**20


def test_object_count_limit_is_the_same_at_sender_and_receiver() -> None:
    # FeedRound: map + v,t entries (5) + round key,value (2) + data key, dict, "x" key, list (4)
    n = codec.MAX_OBJECTS - 11
    msg = FeedRound(0, {"x": [0] * n})
    assert len(decode(encode(msg)).data["x"]) == n
    with pytest.raises(ProtocolError, match="more than 65536 msgpack objects"):
        FeedRound(0, {"x": [0] * (n + 1)})
    wire = _pack({"v": PROTOCOL_VERSION, "t": "FEED_ROUND", "round": 0, "data": {"x": [0] * (n + 1)}})
    with pytest.raises(ProtocolError, match="more than 65536 msgpack objects"):
        decode(wire)


def test_depth_limit_is_the_same_at_sender_and_receiver() -> None:
    def nested(levels: int) -> Any:  # `levels` containers, the dict field included
        value: Any = None
        for _ in range(levels - 1):
            value = [value]
        return {"x": value}

    ok = FeedRound(0, nested(codec.MAX_DEPTH - 1))  # + the frame's own map
    assert decode(encode(ok)) == ok
    with pytest.raises(ProtocolError, match="nested deeper than 16"):
        FeedRound(0, nested(codec.MAX_DEPTH))
    base = {"v": PROTOCOL_VERSION, "t": "FEED_ROUND", "round": 0}
    too_deep = _pack(base, "data", b"\x81\xa1x" + b"\x91" * (codec.MAX_DEPTH - 1) + b"\xc0")
    with pytest.raises(ProtocolError, match="deeper than 16"):
        decode(too_deep)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ProtocolError, match="nested deeper"):
        FeedRound(0, {"loop": cyclic})


# --- version, type, field strictness -------------------------------------------------------

def test_version_mismatch_names_both_versions_and_the_fix() -> None:
    frame = _raw(encode(Hello("n", 1)))
    for wire in (_pack({**frame, "v": PROTOCOL_VERSION + 1}),
                 b"\x83\xa1v\x03\xa1t\xc1\xc1junk"):  # unparseable after "v"
        with pytest.raises(VersionMismatch) as info:
            decode(wire)
        assert isinstance(info.value, ProtocolError)
        assert info.value.peer_version == PROTOCOL_VERSION + 1
        text = str(info.value)
        assert f"version {PROTOCOL_VERSION + 1}" in text and f"version {PROTOCOL_VERSION}" in text
        assert "upgrade the node/coordinator so both run the same rocknet version" in text
    for bad in (True, "1", None, 1.0):
        with pytest.raises(ProtocolError, match="int protocol version"):
            decode(_pack({**frame, "v": bad}))


def test_expect_refuses_other_types() -> None:
    wire = encode(Hello("n", 1))
    assert decode(wire, expect=Hello).name == "n"
    assert isinstance(decode(wire, expect=(Round, Hello)), Hello)
    with pytest.raises(ProtocolError, match="^expected ROUND, got HELLO$"):
        decode(wire, expect=Round)
    with pytest.raises(ProtocolError, match="^expected ROUND or STOP, got HELLO$"):
        decode(wire, expect=(Round, Stop))


def test_missing_unknown_and_unknown_type() -> None:
    frame = _raw(encode(Heartbeat(1, 2)))
    with pytest.raises(ProtocolError, match="HEARTBEAT frame lacks field.s. exchange"):
        decode(_pack({k: v for k, v in frame.items() if k != "exchange"}))
    with pytest.raises(ProtocolError, match="HEARTBEAT frame has unknown field.s. bogus"):
        decode(_pack({**frame, "bogus": 1}))
    with pytest.raises(ProtocolError, match="unknown message type 'BEAT'"):
        decode(_pack({**frame, "t": "BEAT"}))


def test_bool_and_int_are_never_confused() -> None:
    with pytest.raises(ProtocolError, match="field 'pid' of HELLO: expected int, got bool"):
        Hello("n", True)
    with pytest.raises(ProtocolError, match="field 'ok' of CONTROL_REPLY: expected bool, got int"):
        ControlReply(ok=1, message="", effective_round=0, data={})  # type: ignore[arg-type]
    frame = _raw(encode(Hello("n", 1)))
    with pytest.raises(ProtocolError, match="expected int, got bool"):
        decode(_pack({**frame, "pid": False}))
    reply = _raw(encode(ControlReply(ok=True, message="", effective_round=0, data={})))
    with pytest.raises(ProtocolError, match="expected bool, got int"):
        decode(_pack({**reply, "ok": 0}))
    back = decode(encode(FeedRound(0, {"flag": True, "count": 1, "z": 0.0})))
    assert [type(back.data[k]) for k in ("flag", "count", "z")] == [bool, int, float]
    # numpy scalars are accepted when building and arrive as Python scalars
    msg = Hello("n", np.int64(7))  # type: ignore[arg-type]
    assert type(msg.pid) is int
    assert type(ControlReply(ok=np.bool_(True), message="", effective_round=0, data={}).ok) is bool  # type: ignore[arg-type]
    back = decode(encode(FeedRound(0, {"a": np.int16(-3), "b": np.float32(0.5),
                                       "c": np.bool_(False)})))
    assert back.data == {"a": -3, "b": 0.5, "c": False}
    assert type(back.data["c"]) is bool


def test_field_values_are_checked() -> None:
    with pytest.raises(ProtocolError, match="does not fit in int64"):
        Heartbeat(2**63, 0)
    with pytest.raises(ProtocolError, match="does not fit in int64"):
        decode(_pack({"v": PROTOCOL_VERSION, "t": "HEARTBEAT", "device": 2**64 - 1, "exchange": 0}))
    with pytest.raises(ProtocolError, match=r"tuple cannot travel \(use None"):
        FeedRound(0, {"shape": (1, 2)})
    with pytest.raises(ProtocolError, match="key 1 is not a str"):
        FeedRound(0, {"a": {1: 2}})
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        Stop("\udcff")
    with pytest.raises(ProtocolError, match="dtype 'float16' is not allowed"):
        FeedRound(0, {"a": np.zeros(2, np.float16)})
    with pytest.raises(ProtocolError, match="5 dimensions, at most 4"):
        FeedRound(0, {"a": np.zeros((1,) * 5)})
    with pytest.raises(ProtocolError, match="field 'logits' of TX: expected float32 array, got int8"):
        decode(_pack({**_raw(encode(examples()[3])),
                      "logits": _array_ext(b"int8", (3, 5), bytes(15))}))
    with pytest.raises(ProtocolError, match="expected 2-dim array, got shape"):
        Final(0, np.zeros(3, np.float32), np.zeros(0, np.float32), {})
    with pytest.raises(ProtocolError, match="bool array holds bytes other than 0 and 1"):
        decode(_pack({"v": PROTOCOL_VERSION, "t": "FEED_ROUND", "round": 0,
                      "data": {"m": _array_ext(b"bool", (2,), b"\x01\x02")}}))
    with pytest.raises(ProtocolError, match="map key at byte"):
        decode(b"\x83\xa1v\x02\xa1t\xa4STOP\x01\xa1x")


def test_cross_field_checks_at_sender_and_receiver() -> None:
    tx = examples()[3]
    assert isinstance(tx, Tx)
    with pytest.raises(ProtocolError, match="series_items has 2 items, series 2 rows, labels 3"):
        dataclasses.replace(tx, labels=np.zeros(3, np.int16))
    with pytest.raises(ProtocolError, match="logits_items has 2 items, logits 3 rows"):
        dataclasses.replace(tx, logits_items=np.zeros(2, np.int32))
    rx = examples()[4]
    with pytest.raises(ProtocolError, match=r"logits_mask has shape \(3, 2\)"):
        dataclasses.replace(rx, logits_mask=np.zeros((3, 2), bool))
    with pytest.raises(ProtocolError, match="bias has 3 entries, must be 0 or 5"):
        Final(0, np.zeros((5, 2), np.float32), np.zeros(3, np.float32), {})
    with pytest.raises(ProtocolError, match=r"device 20 is not in \[0, n_devices=20\)"):
        Welcome(20, 20, {}, {})
    with pytest.raises(ProtocolError, match="shard entries must be numpy arrays, 'x' is not"):
        Welcome(0, 1, {}, {"x": [1, 2]})
    with pytest.raises(ProtocolError, match="must not run backwards"):
        Round(0, 5, 4, 0, 0)
    frame = _raw(encode(rx))
    frame["labels"] = _array_ext(b"int16", (1,), b"\0\0")
    with pytest.raises(ProtocolError, match="^RX: series_items has 2 items"):
        decode(_pack(frame))


def test_gradient_and_sync_fields_of_a_wrong_shape_or_dtype_are_rejected() -> None:
    """Private labels' g and data-parallel sync messages are validated like every array."""
    tx, rx = examples()[3], examples()[4]
    assert isinstance(tx, Tx) and isinstance(rx, Rx)
    cases = [
        (tx, "grads", _array_ext(b"float64", (2, 5), bytes(80)), "field 'grads' of TX: expected float32 array, got float64"),
        (tx, "grads", _array_ext(b"float32", (10,), bytes(40)), "field 'grads' of TX: expected 2-dim array"),
        (tx, "grad_items", _array_ext(b"int64", (2,), bytes(16)), "field 'grad_items' of TX: expected int32 array"),
        (tx, "sync_payload", _array_ext(b"float32", (4,), bytes(16)), "field 'sync_payload' of TX: expected uint8 array"),
        (tx, "sync_payload", _array_ext(b"uint8", (2, 8), bytes(16)), "expected 1-dim array"),
        (rx, "grads", _array_ext(b"float32", (3, 5), bytes(60)), "^RX: grad_items has 2 items, grads 3 rows"),
        (rx, "grads", _array_ext(b"float32", (2, 4), bytes(32)), "^RX: grads have 4 classes, logits 5"),
        (rx, "sync_payloads", _array_ext(b"uint8", (3, 16), bytes(48)), "^RX: sync_sources has 2 devices, sync_payloads 3 rows"),
        (rx, "sync_payloads", _array_ext(b"int8", (2, 16), bytes(32)), "expected uint8 array, got int8"),
    ]
    for msg, key, value, message in cases:
        frame = _raw(encode(msg))
        frame[key] = value
        with pytest.raises(ProtocolError, match=message):
            decode(_pack(frame))
    # ... and the sender cannot build them either.
    with pytest.raises(ProtocolError, match="grad_items has 1 items, grads 2 rows"):
        dataclasses.replace(tx, grad_items=np.zeros(1, np.int32))
    with pytest.raises(ProtocolError, match="expected float32 array, got float64"):
        dataclasses.replace(tx, grads=np.zeros((2, 5), np.float64))
    with pytest.raises(ProtocolError, match=r"must not run backwards"):
        Round(0, 0, 0, 0, 0, 5, 4)
    with pytest.raises(ProtocolError, match="sync is a sync number or -1"):
        Round(0, 0, 0, 0, 0, 0, 0, -2)
    # Without them (the default mode) the fields are empty arrays of the right dtype.
    bare = decode(encode(Tx(1, 0, np.zeros(0, np.int32), np.zeros((0, 4), np.int8),
                            np.zeros(0, np.int16), np.zeros(0, np.int32),
                            np.zeros((0, 2), np.float32))), expect=Tx)
    assert bare.grads.dtype == np.float32 and bare.grads.shape == (0, 0)
    assert bare.sync_payload.dtype == np.uint8 and bare.sync_payload.shape == (0,)


# --- decoded arrays -----------------------------------------------------------------------

def test_decoded_arrays_are_read_only_aligned_views_of_private_bytes() -> None:
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    wire = encode(Final(1, weights, np.zeros(3, np.float32), {}))
    buffer = bytearray(wire)
    msg = decode(buffer, expect=Final)
    assert not msg.weights.flags.writeable and msg.weights.flags.aligned
    with pytest.raises(ValueError, match="read-only"):
        msg.weights[0, 0] = 1.0
    with pytest.raises(ValueError):
        msg.weights.setflags(write=True)
    buffer[-60:] = bytes(60)  # the frame buffer is reused: the message must not change
    np.testing.assert_array_equal(msg.weights, weights)
    writable = msg.weights.copy()
    writable[0, 0] = -1.0
    assert msg.weights[0, 0] == 0.0
    assert decode(memoryview(wire)[:]) == msg


def test_encode_array_helpers_round_trip_every_dtype_and_zero_sizes() -> None:
    for name in codec.ALLOWED_DTYPES:
        for shape in [(), (0,), (3,), (2, 0, 3), (1, 2, 3, 2)]:
            a = (np.arange(int(np.prod(shape))) % 2).astype(name).reshape(shape)
            back = frames.decode_array(frames.encode_array(a))
            assert back.dtype.name == name and back.shape == shape
            np.testing.assert_array_equal(back, a)


# --- adding a message type ----------------------------------------------------------------

@pytest.fixture
def probe() -> Iterator[type[Message]]:
    @register
    @dataclass(frozen=True, eq=False)
    class Probe(Message):
        TYPE: ClassVar[str] = "TEST_PROBE"
        x: float
        note: str | None
        items: list[Any]
        w: np.ndarray | None = array_field("float64", 1)

    yield Probe
    del message._REGISTRY["TEST_PROBE"]


def test_a_new_message_is_one_small_dataclass(probe: type[Message]) -> None:
    msg = probe(3, None, [1, "a"], None)  # type: ignore[call-arg]
    assert type(msg.x) is float  # type: ignore[attr-defined]
    assert decode(encode(msg), expect=probe) == msg
    full = probe(0.5, "n", [], np.ones(2))  # type: ignore[call-arg]
    assert decode(encode(full)) == full
    with pytest.raises(ProtocolError, match="field 'note' of TEST_PROBE: expected str or None"):
        probe(1.0, 5, [], None)  # type: ignore[call-arg]
    with pytest.raises(ProtocolError, match="expected float, got bool"):
        probe(True, None, [], None)  # type: ignore[call-arg]


def test_register_refuses_mistakes() -> None:
    with pytest.raises(TypeError, match="eq=False"):
        @register
        @dataclass(frozen=True)
        class Eq(Message):
            TYPE: ClassVar[str] = "TEST_EQ"

    with pytest.raises(TypeError, match="already taken"):
        @register
        @dataclass(frozen=True, eq=False)
        class Dup(Message):
            TYPE: ClassVar[str] = "HELLO"

    with pytest.raises(TypeError, match="cannot travel"):
        @register
        @dataclass(frozen=True, eq=False)
        class Tup(Message):
            TYPE: ClassVar[str] = "TEST_TUP"
            t: tuple[int, int]

    with pytest.raises(TypeError, match="reserved"):
        @register
        @dataclass(frozen=True, eq=False)
        class Res(Message):
            TYPE: ClassVar[str] = "TEST_RES"
            v: int

    assert not {"TEST_EQ", "TEST_TUP", "TEST_RES"} & set(message_types())


@pytest.mark.parametrize("cls", [Round, Tx, Rx], ids=lambda c: c.TYPE)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_build_without_checks_gives_the_checked_message_and_the_same_bytes(
        cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    values = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    built = cls.build(**values)
    assert built == msg
    assert encode(built) == encode(msg)


def test_a_built_bad_value_is_refused_where_it_is_decoded() -> None:
    good = Round(exchange=1, series_from=0, series_to=2, logits_from=0, logits_to=1)
    bad = Round.build(exchange=1, series_from=2, series_to=0, logits_from=0, logits_to=1)
    assert decode(encode(good), expect=Round) == good
    with pytest.raises(ProtocolError, match="ROUND"):
        decode(encode(bad), expect=Round)
    with pytest.raises(TypeError, match="missing field 'logits_to'"):
        Round.build(exchange=1, series_from=0, series_to=2, logits_from=0)
    with pytest.raises(TypeError, match="unknown field"):
        Round.build(exchange=1, series_from=0, series_to=2, logits_from=0, logits_to=1, x=3)
