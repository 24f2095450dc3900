"""The rate cache: derived networks by `RateKey` (rate at 1e-3, mode), least recently used out.

Bounded by entry count and by bytes. Concurrent requests for one new key derive it once: the
first caller derives, the others wait for its result (or its error).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from mrmp.rates import RateKey

V = TypeVar("V")


@dataclass
class CacheEvents:
    """Callbacks for metrics; the cache itself knows nothing of Prometheus."""

    on_hit: Callable[[RateKey], None] = lambda key: None
    on_miss: Callable[[RateKey], None] = lambda key: None
    on_evict: Callable[[RateKey], None] = lambda key: None
    on_change: Callable[[int, int], None] = lambda entries, nbytes: None


class RateCache(Generic[V]):
    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        size_of: Callable[[V], int],
        events: CacheEvents | None = None,
    ) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.size_of = size_of
        self.events = events or CacheEvents()
        self._lock = threading.RLock()  # event callbacks may read snapshot()
        self._entries: OrderedDict[RateKey, tuple[V, int]] = OrderedDict()
        self._pending: dict[RateKey, Future[V]] = {}
        self._bytes = 0

    def get(self, key: RateKey, create: Callable[[], V]) -> tuple[V, bool]:
        """The value for `key` and whether it was cached; `create` runs once per missing key."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.events.on_hit(key)
                return self._entries[key][0], True
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
                self.events.on_miss(key)
        if not owner:
            # Another request is deriving this key: share its result.
            self.events.on_hit(key)
            return future.result(), True
        try:
            value = create()
        except BaseException as e:
            with self._lock:
                del self._pending[key]
            future.set_exception(e)
            raise
        with self._lock:
            del self._pending[key]
            self._insert(key, value)
        future.set_result(value)
        return value, False

    def _insert(self, key: RateKey, value: V) -> None:
        size = self.size_of(value)
        self._entries[key] = (value, size)
        self._bytes += size
        # Evict the least recently used, but never the entry just made: a network larger
        # than the byte bound is still served once.
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            old, (_, old_size) = self._entries.popitem(last=False)
            self._bytes -= old_size
            self.events.on_evict(old)
        self.events.on_change(len(self._entries), self._bytes)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def snapshot(self) -> list[RateKey]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)
