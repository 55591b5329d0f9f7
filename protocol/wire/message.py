"""Typed, validated messages: the :class:`Message` base, :func:`register` and field checks.

A message type is a frozen dataclass registered with :func:`register`. Field types come
from the annotations: ``int`` (never bool, int64 range), ``float`` (int accepted, stored as
float), ``str``, ``bool``, ``dict`` / ``list`` (values checked by
:func:`protocol.wire.codec.check_value`), ``np.ndarray`` with an optional dtype name and
dimension count given by :func:`array_field`; each may be ``X | None``. Fields are checked
when a message is built (numpy scalars are turned into Python scalars), so a bad message
fails at the sender with the same :class:`ProtocolError` the receiver would raise.
:meth:`Message.build` skips those checks for the few messages a process builds itself on
its hot path (ROUND, TX, RX): their bytes are still validated where they are decoded.
The wire envelope and the catalogue of messages are in :mod:`protocol.wire.frames`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from protocol.wire import codec
from protocol.wire.codec import ProtocolError

_KINDS = (bool, int, float, str, dict, list, np.ndarray)
#: msgpack objects of the envelope: the frame's map and its "v" and "t" keys and values.
ENVELOPE_OBJECTS = 5
_REGISTRY: dict[str, type[Message]] = {}
M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class _Field:
    name: str
    kind: type
    optional: bool
    dtype: str | None = None
    ndim: int | None = None

    def describe(self) -> str:
        if self.kind is np.ndarray:
            text = f"{self.dtype or 'numpy'} array" + (f" of {self.ndim} dims" if self.ndim
                                                      is not None else "")
        else:
            text = self.kind.__name__
        return text + (" or None" if self.optional else "")


def array_field(dtype: str | None = None, ndim: int | None = None) -> Any:
    """A dataclass field holding a numpy array of the given dtype name and dimensions."""
    return dataclasses.field(metadata={"dtype": dtype, "ndim": ndim})


def _field_spec(cls: type, field: dataclasses.Field[Any], hint: Any) -> _Field:
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)
                and type(None) in args and len(args) == 2)
    if optional:
        hint = next(a for a in args if a is not type(None))
    kind = typing.get_origin(hint) or hint
    if kind not in _KINDS:
        raise TypeError(f"{cls.__name__}.{field.name}: annotation {hint!r} cannot travel")
    dtype, ndim = field.metadata.get("dtype"), field.metadata.get("ndim")
    if dtype is not None and dtype not in codec.ALLOWED_DTYPES:
        raise TypeError(f"{cls.__name__}.{field.name}: dtype {dtype!r} is not allowed")
    return _Field(field.name, kind, optional, dtype, ndim)


def register(cls: type[M]) -> type[M]:
    """Class decorator: make a ``@dataclass(frozen=True, eq=False)`` subclass of
    :class:`Message` with a ``TYPE`` class variable a wire message."""
    params = getattr(cls, "__dataclass_params__", None)
    if (not dataclasses.is_dataclass(cls) or params is None or not params.frozen
            or "__eq__" in cls.__dict__):
        raise TypeError(f"{cls.__name__}: decorate with @dataclass(frozen=True, eq=False)")
    if not cls.TYPE or cls.TYPE in _REGISTRY:
        raise TypeError(f"{cls.__name__}: TYPE {cls.TYPE!r} is empty or already taken")
    hints = typing.get_type_hints(cls)
    fields = tuple(_field_spec(cls, f, hints[f.name]) for f in dataclasses.fields(cls))
    if {"v", "t"} & {f.name for f in fields}:  # the envelope of protocol.wire.frames
        raise TypeError(f"{cls.__name__}: 'v' and 't' are reserved for the envelope")
    cls._FIELDS = fields
    cls._ACCEPT = tuple((f.name, _acceptor(f)) for f in fields)
    cls._NAMES = frozenset(f.name for f in fields)
    cls._DEFAULTS = {f.name: (f.default, f.default_factory) for f in dataclasses.fields(cls)
                     if f.default is not dataclasses.MISSING
                     or f.default_factory is not dataclasses.MISSING}
    _REGISTRY[cls.TYPE] = cls
    return cls


def message_types() -> dict[str, type[Message]]:
    """Wire type name -> message class, for every registered message."""
    return dict(_REGISTRY)


def message_class(type_name: str) -> type[Message] | None:
    """The message class registered under wire type ``type_name``, or None."""
    return _REGISTRY.get(type_name)


def _check_field(type_name: str, spec: _Field, value: Any, budget: codec.Budget) -> Any:
    """The validated (possibly normalized) value of one field, or ProtocolError."""
    where = f"field {spec.name!r} of {type_name}"
    kind, is_bool = spec.kind, isinstance(value, (bool, np.bool_))
    if kind in (dict, list) and isinstance(value, kind):
        codec.check_value(value, where, 2, budget)  # counts the value and its contents
        return value
    budget.take(where)
    if value is None and spec.optional:
        return value
    if kind is bool and is_bool:
        return bool(value)
    if kind in (int, float) and isinstance(value, (int, np.integer)) and not is_bool:
        codec.check_int(int(value), where)
        return kind(value)
    if kind is float and isinstance(value, (float, np.floating)):
        return float(value)
    if kind is str and isinstance(value, str):
        codec.check_str(value, where)
        return value
    if kind is np.ndarray and isinstance(value, np.ndarray):
        name = codec.check_array(value, where)
        if spec.dtype is not None and name != spec.dtype:
            raise ProtocolError(f"{where}: expected {spec.dtype} array, got {name}")
        if spec.ndim is not None and value.ndim != spec.ndim:
            raise ProtocolError(f"{where}: expected {spec.ndim}-dim array, "
                                f"got shape {value.shape}")
        return value
    got = f"{value.dtype.name} array" if isinstance(value, np.ndarray) else type(value).__name__
    raise ProtocolError(f"{where}: expected {spec.describe()}, got {got}")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _plain_map_objects(value: dict[str, Any], levels: int = 2) -> int:
    """msgpack objects of a map of ASCII keys to scalars needing no normalization (or to
    such maps, ``levels`` deep at most), or 0 when it is anything else (then
    :func:`codec.check_value` decides)."""
    objects = 1 + len(value)
    for key, item in value.items():
        if type(key) is not str or not key.isascii():
            return 0
        kind = type(item)
        if kind is int:
            if not _INT64_MIN <= item <= _INT64_MAX:
                return 0
        elif kind is dict and levels > 1:
            inner = _plain_map_objects(item, levels - 1)
            if not inner:
                return 0
            objects += inner - 1
        elif not (kind is float or kind is bool or item is None
                  or (kind is str and item.isascii())):
            return 0
        objects += 1
    return objects


def _acceptor(spec: _Field) -> typing.Callable[[Any], int]:
    """A quick test of a field value: the msgpack objects it takes when it is valid exactly
    as it is (nothing to normalize), else 0. Never wrong in the other direction: a value it
    accepts passes :func:`_check_field` unchanged."""
    kind, optional = spec.kind, spec.optional
    if kind is np.ndarray:
        names = codec.ALLOWED_DTYPES if spec.dtype is None else (spec.dtype,)
        dtypes = frozenset(np.dtype(n).newbyteorder(o) for n in names for o in ("<", ">"))
        ndims = range(codec.MAX_NDIM + 1) if spec.ndim is None else (spec.ndim,)

        def accept(value: Any) -> int:
            if type(value) is np.ndarray:
                return int(value.dtype in dtypes and value.ndim in ndims)
            return int(optional and value is None)
    elif kind is int:
        def accept(value: Any) -> int:
            return int((type(value) is int and _INT64_MIN <= value <= _INT64_MAX)
                       or (optional and value is None))
    elif kind is dict:
        def accept(value: Any) -> int:
            if type(value) is dict:
                return _plain_map_objects(value)
            return int(optional and value is None)
    elif kind in (float, bool):
        def accept(value: Any) -> int:
            return int(type(value) is kind or (optional and value is None))
    elif kind is str:
        def accept(value: Any) -> int:
            return int((type(value) is str and value.isascii()) or (optional and value is None))
    else:  # lists: always the full check
        def accept(value: Any) -> int:
            return 0
    return accept


class Message:
    """Base of all wire messages; subclasses are registered with :func:`register`."""

    TYPE: ClassVar[str] = ""
    _FIELDS: ClassVar[tuple[_Field, ...]] = ()
    #: field name -> (default, default factory), one of them MISSING
    _DEFAULTS: ClassVar[dict[str, tuple[Any, Any]]] = {}
    #: (field name, quick acceptor) per field, see :func:`_acceptor`
    _ACCEPT: ClassVar[tuple[tuple[str, typing.Callable[[Any], int]], ...]] = ()
    #: the field names
    _NAMES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def build(cls: type[M], **values: Any) -> M:
        """``cls(**values)`` without the field and cross-field checks.

        For messages this process builds itself from typed values on the exchange path,
        where the checks cost more than the work (a ROUND, TX and RX per device per
        exchange). The receiver still validates the bytes (:func:`protocol.wire.frames.decode`),
        so a wrong value fails there with the same :class:`ProtocolError`. Unknown or
        missing fields are a ``TypeError`` here, as with the constructor.
        """
        if unknown := values.keys() - cls._NAMES:
            raise TypeError(f"{cls.__name__}.build: unknown field(s) {', '.join(sorted(unknown))}")
        msg = object.__new__(cls)
        for spec in cls._FIELDS:
            if spec.name in values:
                value = values[spec.name]
            elif spec.name in cls._DEFAULTS:
                default, factory = cls._DEFAULTS[spec.name]
                value = factory() if default is dataclasses.MISSING else default
            else:
                raise TypeError(f"{cls.__name__}.build: missing field {spec.name!r}")
            object.__setattr__(msg, spec.name, value)
        return msg

    def __post_init__(self) -> None:
        # Quick pass: every field valid as it is and the frame within the object budget;
        # otherwise the full pass below, which normalizes or raises the precise error.
        values, objects = self.__dict__, ENVELOPE_OBJECTS
        for name, accept in self._ACCEPT:
            taken = accept(values[name])
            if not taken:
                break
            objects += 1 + taken  # the key, the value
        else:
            if objects <= codec.MAX_OBJECTS:
                self.check()
                return
        budget = codec.Budget(codec.MAX_OBJECTS - ENVELOPE_OBJECTS)
        for spec in self._FIELDS:
            budget.take(f"field {spec.name!r} of {self.TYPE}")  # the key
            value = getattr(self, spec.name)
            checked = _check_field(self.TYPE, spec, value, budget)
            if checked is not value:
                object.__setattr__(self, spec.name, checked)
        self.check()

    def check(self) -> None:
        """Cross-field checks of a message type; raise :class:`ProtocolError`."""

    def fail(self, text: str) -> typing.NoReturn:
        """Raise a :class:`ProtocolError` about this message."""
        raise ProtocolError(f"{self.TYPE}: {text}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(codec.values_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]  # fields hold arrays and dicts
