"""A faster ``dataclasses.replace`` for the frozen, slotted value types on the request path.

``dataclasses.replace`` rebuilds the keyword arguments of every field and runs ``__init__``;
on a cache hit that was a measurable share of the whole call. A slotted dataclass that runs no
``__post_init__`` can be copied slot by slot through its member descriptors instead.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

_T = TypeVar("_T")
_SLOTS: dict[type, tuple[tuple[tuple[str, Any], ...], frozenset[str]]] = {}


def _slots_of(cls: type) -> tuple[tuple[tuple[str, Any], ...], frozenset[str]]:
    names = [f.name for f in fields(cls)]
    slots = tuple((name, cls.__dict__[name]) for name in names)  # member descriptors
    found = _SLOTS[cls] = (slots, frozenset(names))
    return found


def slots_of(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(field name, member descriptor)`` of every field of the frozen, slotted dataclass
    ``cls``, in field order: what :func:`fast_replace` copies through."""
    return (_SLOTS.get(cls) or _slots_of(cls))[0]


def fast_replace(obj: _T, changes: dict[str, Any]) -> _T:
    """A copy of the frozen, slotted dataclass ``obj`` with ``changes`` applied."""
    cls = type(obj)
    slots, names = _SLOTS.get(cls) or _slots_of(cls)
    if not names.issuperset(changes):
        unknown = ", ".join(sorted(set(changes) - names))
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    new = object.__new__(cls)
    for name, slot in slots:
        slot.__set__(new, changes[name] if name in changes else slot.__get__(obj, cls))
    return new
