"""Where a shared budget lives in Redis: the names of its keys, what each one holds, how a
process names itself there, and how the numbers come back. The Lua scripts of
:mod:`._scripts` are the only code that reads or writes these keys; this module is their map,
for the scripts' readers and for the limiter, which names the keys (:func:`keys_for`) and
itself (:func:`member_id`) and reads the scripts' replies (:func:`reply_float`)."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

__all__ = ["DEFAULT_KEY", "KEY_PARTS", "MEMBER_WINDOW_US", "keys_for", "member_id", "reply_float"]

#: The name of the shared budget when none is given; processes with the same key share one.
DEFAULT_KEY = "llm_client:ratelimit"

#: The keys of one budget, in the order the scripts take them (``KEYS[1]`` to ``KEYS[5]``),
#: each named ``{key}:<part>``. Times are microseconds (on the server's clock), rates per
#: microsecond, and numbers are stored as text (``%.17g``).
#:
#: * ``state``, a hash, is the schedule (GCRA): ``tt`` and ``tr``, for tokens and requests,
#:   the time at which the bucket would be full again; ``last`` the latest slot given out;
#:   ``seq`` counts the changes and names the reservations. While entries are pending it also
#:   holds the base (``bt``, ``br``, ``bl``: the same with only what is before the pending
#:   list applied) and running sums of the pending amounts (``pt``, ``pr`` at the end of the
#:   list, ``qt``, ``qr`` at its base). ``lt`` and ``lr`` are the server's limits, as last
#:   seen by any process. A missing hash is a full bucket.
#: * ``members``, a sorted set: the processes that reserved within :data:`MEMBER_WINDOW_US`,
#:   scored by when (the local share while Redis is down is one over their number).
#: * ``pending``, a list: the schedule's entries that could still be undone, oldest first,
#:   each ``"kind seq m_t m_r d_t d_r"`` (kind ``r`` a reservation, ``c`` a charge, ``f`` a
#:   floor from a header; how they replay is told in :mod:`._scripts`).
#: * ``kt`` and ``kr``, sorted sets: each pending entry's replay key (by ``seq``), per
#:   dimension, so that a refund finds the new end of the schedule in O(log n).
#:
#: The state expires a minute after its buckets would be full again, ``members`` two minutes
#: after the last reservation.
KEY_PARTS = ("state", "members", "pending", "kt", "kr")

#: How long a process counts as using the budget after its last reservation (the ``reserve``
#: script's ``60000000``).
MEMBER_WINDOW_US = 60_000_000


def keys_for(key: str) -> list[str]:
    """The Redis keys of the budget named ``key``, in :data:`KEY_PARTS` order.

    They share one hash tag (``{key}``), so that all of them live in the same cluster slot.
    """
    return [f"{{{key}}}:{part}" for part in KEY_PARTS]


def member_id() -> str:
    """A name for this limiter in the ``members`` set: host, process id and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def reply_float(raw: Any) -> float:
    """A number from a script's reply (bytes or text, as the client decodes it)."""
    return float(raw.decode() if isinstance(raw, bytes) else raw)
