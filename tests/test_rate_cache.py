"""The rate cache: LRU bounds by entries and bytes, and one derivation per key under load."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mrmp.rates import RateKey
from service.rate_cache import CacheEvents, RateCache


def make(max_entries=3, max_bytes=1000, events=None) -> RateCache[int]:
    return RateCache(max_entries, max_bytes, size_of=lambda v: v, events=events)


def test_key_resolution_is_1e3():
    assert RateKey.of(0.9001, "prior") == RateKey.of(0.8996, "prior") == RateKey(900, "prior")
    assert RateKey.of(0.901, "prior") != RateKey.of(0.9, "prior")
    assert RateKey.of(0.9, "exact") != RateKey.of(0.9, "prior")
    assert RateKey.of(0.9312, "exact").rate == 0.931


def test_hit_and_least_recently_used_eviction():
    evicted = []
    cache = make(events=CacheEvents(on_evict=evicted.append))
    for r in (1, 2, 3):
        assert cache.get(RateKey(r, "prior"), lambda: 10) == (10, False)
    assert cache.get(RateKey(1, "prior"), lambda: pytest.fail("cached")) == (10, True)
    cache.get(RateKey(4, "prior"), lambda: 10)  # evicts 2, the least recently used
    assert evicted == [RateKey(2, "prior")]
    assert set(cache.snapshot()) == {RateKey(1, "prior"), RateKey(3, "prior"), RateKey(4, "prior")}
    assert len(cache) == 3


def test_byte_bound_evicts_until_it_fits():
    cache = make(max_entries=100, max_bytes=100)
    for r in range(5):
        cache.get(RateKey(r, "prior"), lambda: 40)
        assert cache.nbytes <= 100
    assert cache.snapshot() == [RateKey(3, "prior"), RateKey(4, "prior")]
    # One value above the bound is still served, and then alone.
    value, hit = cache.get(RateKey(9, "prior"), lambda: 500)
    assert (value, hit, cache.snapshot()) == (500, False, [RateKey(9, "prior")])


def test_one_derivation_for_sixteen_concurrent_requests():
    calls = []
    start = threading.Barrier(16)

    def create():
        calls.append(1)
        time.sleep(0.05)
        return 7

    cache = make()

    def request(_):
        start.wait()
        return cache.get(RateKey(900, "prior"), create)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(request, range(16)))
    assert len(calls) == 1
    assert all(v == 7 for v, _ in results)
    assert sum(not hit for _, hit in results) == 1


def test_failed_derivation_is_not_cached_and_reaches_waiters():
    cache = make()

    def boom():
        raise RuntimeError("derivation failed")

    with pytest.raises(RuntimeError):
        cache.get(RateKey(1, "prior"), boom)
    assert len(cache) == 0
    assert cache.get(RateKey(1, "prior"), lambda: 3) == (3, False)
