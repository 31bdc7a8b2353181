"""The linearizability checker: hand-written histories, a brute-force oracle and random executions."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftlab.check import KV_MODEL, LinearizabilityResult, Model, Operation, check

# --- helpers -------------------------------------------------------------------------------------------


def op(kind: str, key: str = "x", value: str | None = None, *, call: float, ret: float | None,
       output: object = None, expected: str | None = None, client: int = 1) -> Operation:
    return Operation(client, kind, key, value, expected, call=call, ret=ret, output=output)


def put(value: str, call: float, ret: float | None, key: str = "x") -> Operation:
    return op("put", key, value, call=call, ret=ret)


def get(output: str | None, call: float, ret: float | None, key: str = "x") -> Operation:
    return op("get", key, call=call, ret=ret, output=output)


def apply(value: str | None, o: Operation) -> tuple[str | None, object]:
    """An independent sequential KV semantics for one key: (new value, output)."""
    if o.op in ("get", "read"):
        return value, value
    if o.op == "put":
        return o.value, None
    if o.op == "append":
        return (value or "") + o.value, (value or "") + o.value
    if o.op == "delete":
        return None, value is not None
    assert o.op == "cas"
    return (o.value, True) if value == o.expected else (value, False)


def brute_force(ops: Sequence[Operation]) -> bool:
    """Linearizable by exhaustive search (one key): unknown-outcome ops may be skipped or placed after their call."""
    n = len(ops)
    seen: set[tuple[frozenset[int], str | None]] = set()

    def search(done: frozenset[int], value: str | None) -> bool:
        if all(i in done or ops[i].ret is None for i in range(n)):
            return True
        if (done, value) in seen:
            return False
        seen.add((done, value))
        for i in set(range(n)) - done:
            blocked = any(j not in done and j != i and ops[j].ret is not None and ops[j].ret < ops[i].call
                          for j in range(n))
            new, out = apply(value, ops[i])
            if not blocked and (ops[i].ret is None or ops[i].op == "put" or out == ops[i].output) \
                    and search(done | {i}, new):
                return True
        return False

    return search(frozenset(), None)


def execute(rng: random.Random, n_ops: int, clients: int, keys: str, *, unknown: float = 0.0,
            max_unknown: int = 6, spread: float = 3.0, values: str = "abc") -> list[Operation]:
    """Random ops executed against a dict at increasing linearization points, each inside its [call, ret].

    Each client runs one op at a time. An op of unknown outcome (at most `max_unknown` of them: a
    non-linearizable verdict costs time exponential in their number) took effect or not, at random.
    """
    store: dict[str, str | None] = {}
    busy = [0.0] * clients
    point = 0.0
    history = []
    for _ in range(n_ops):
        c = rng.randrange(clients)
        point = max(point, busy[c]) + rng.uniform(0.01, 1.0)
        call = rng.uniform(max(busy[c], point - spread), point)
        ret = point + rng.uniform(0.0, spread)
        busy[c] = ret
        key = rng.choice(keys)
        kind = rng.choice(["put", "get", "read", "append", "delete", "cas"])
        current = store.get(key)
        expected = current if rng.random() < 0.5 else rng.choice([None, *values])
        o = op(kind, key, None if kind in ("get", "read", "delete") else rng.choice(values), call=call, ret=ret,
               expected=expected if kind == "cas" else None, client=c)
        if rng.random() < unknown and max_unknown > 0:
            max_unknown -= 1
            if rng.random() < 0.5:
                store[key] = apply(current, o)[0]
            history.append(replace(o, ret=None))
        else:
            store[key], output = apply(current, o)
            history.append(replace(o, output=output))
    return history


# --- linearizable histories -----------------------------------------------------------------------------


def test_sequential_history_of_every_operation() -> None:
    h = [put("a", 0, 1), get("a", 2, 3),
         op("append", value="b", call=4, ret=5, output="ab"), get("ab", 6, 7),
         op("cas", value="c", expected="ab", call=8, ret=9, output=True),
         op("cas", value="d", expected="ab", call=10, ret=11, output=False), get("c", 12, 13),
         op("delete", call=14, ret=15, output=True), get(None, 16, 17), op("delete", call=18, ret=19, output=False),
         op("cas", value="e", expected=None, call=20, ret=21, output=True),
         op("append", "y", "q", call=22, ret=23, output="q")]
    result = check(h)
    assert result.ok is True and bool(result)
    assert result.partitions == 2 and result.failing_key is None and result.shortest_bad_prefix == ()
    assert str(result).startswith("linearizable")


@pytest.mark.parametrize("first, second", [("a", "b"), ("b", "a"), ("a", "a"), ("b", "b")])
def test_concurrent_puts_and_gets_either_order(first: str, second: str) -> None:
    # put a and put b overlap each other and both gets; any pair of observations is possible
    h = [put("a", 0, 5), put("b", 1, 6), get(first, 2, 7), get(second, 3, 8)]
    assert check(h).ok is True


@pytest.mark.parametrize("final", ["a", "b"])
def test_last_writer_decides_after_concurrent_puts(final: str) -> None:
    h = [put("a", 0, 5), put("b", 1, 6), get(final, 7, 8), get(final, 9, 10)]
    assert check(h).ok is True
    other = "b" if final == "a" else "a"
    assert check([*h, get(other, 11, 12)]).ok is False  # the value cannot flip back without a write


def test_cas_success_and_failure() -> None:
    h = [put("a", 0, 1),
         op("cas", value="b", expected="a", call=2, ret=4, output=True, client=1),
         op("cas", value="c", expected="a", call=3, ret=5, output=False, client=2),  # lost the race
         get("b", 6, 7)]
    assert check(h).ok is True


@pytest.mark.parametrize("seen", ["a", "b"])
def test_unknown_outcome_put_may_or_may_not_be_observed(seen: str) -> None:
    h = [put("a", 0, 1), put("b", 2, None), get(seen, 5, 6)]
    assert check(h).ok is True


def test_unknown_outcome_put_takes_effect_once_and_stays() -> None:
    h = [put("a", 0, 1), put("b", 2, None), get("b", 5, 6), get("a", 7, 8)]
    assert check(h).ok is False
    # ... and it cannot take effect before its call
    assert check([put("a", 0, 1), get("b", 2, 3), put("b", 4, None)]).ok is False


def test_unknown_outcome_output_is_ignored() -> None:
    h = [put("a", 0, 1), op("get", call=2, ret=None, output="never written"),
         op("cas", value="b", expected="zzz", call=2, ret=None, output=True), get("a", 3, 4)]
    assert check(h).ok is True


def read(output: str | None, call: float, ret: float | None, key: str = "x", client: int = 1) -> Operation:
    return op("read", key, call=call, ret=ret, output=output, client=client)


@pytest.mark.parametrize("stale", [False, True])
def test_a_read_without_the_log_is_held_to_the_rule_of_a_get(stale: bool) -> None:
    """A read (ReadIndex or a lease) must return the latest value, as a get through the log must."""
    h = [put("a", 0, 1), put("b", 2, 3), read("a" if stale else "b", 4, 5), read("b", 4.5, 6)]
    as_gets = [replace(o, op="get") if o.op == "read" else o for o in h]
    assert check(h).ok is (not stale) is check(as_gets).ok
    if stale:
        result = check(h)
        assert result.shortest_bad_prefix == tuple(h) and result.bad_at == 5
        assert "client 1: read('x') -> 'a'  [4, 5]" in result.explain()
    # concurrent with a write, a read may see either value; a read that returns at once (call == ret) too
    assert check([put("a", 0, 1), put("b", 2, 4), read("a", 3, 3), read("b", 3.5, 5)]).ok is True
    assert check([put("a", 0, 1), put("b", 2, 4), read("b", 3, 3), read("a", 3.5, 5)]).ok is False


def test_reads_of_unknown_outcome_are_left_out() -> None:
    """A read never answered changes nothing and constrains nothing: the check leaves it out (so that
    many of them cost nothing), whatever output it carries; a model without `read_only` keeps them."""
    pending = [read(v, 0.5 + i, None, key=k, client=10 + i) for i, (k, v) in enumerate(
        [("x", "zzz"), ("x", None), ("y", "q"), ("y", "a")] * 10)]
    good = [put("a", 0, 1), put("b", 2, 3), read("b", 4, 5)]
    result = check(good + pending)
    assert result.ok is True and result.partitions == 1  # key y had only pending reads
    bad = check([*good, read("a", 6, 7), *pending])
    assert bad.ok is False and bad.failing_key == "x"
    assert all(o.ret is not None for o in bad.shortest_bad_prefix)
    assert KV_MODEL.read_only(read("a", 0, 1)) and KV_MODEL.read_only(get("a", 0, 1))
    assert not any(KV_MODEL.read_only(o) for o in (put("a", 0, 1), op("delete", call=0, ret=1)))
    keeps = replace(KV_MODEL, read_only=Model(init=lambda: None, step=lambda s, o: (True, s)).read_only)
    assert check(good + pending, keeps).ok is True and check(good + pending, keeps).partitions == 2


# --- non-linearizable histories ----------------------------------------------------------------------------


def test_stale_read_and_its_shortest_bad_prefix() -> None:
    h = [put("a", 0, 1), put("b", 2, 3),
         get("a", 4, 5),  # stale: put b completed before this get started
         get("b", 4.5, 6),  # still running when the stale get returns
         put("c", 7, 8), get("c", 9, 10)]
    result = check(h)
    assert result.ok is False and not result
    assert result.failing_key == "x" and result.failing_partition == 0
    assert result.shortest_bad_prefix == tuple(h[:4])
    assert result.bad_at == 5
    assert check(result.shortest_bad_prefix).ok is False
    assert check(h[:3]).ok is False and check(h[:2]).ok is True
    assert "first 4 operations on key 'x'" in str(result)
    lines = result.explain().splitlines()
    assert lines[0] == str(result) and len(lines) == 2 + 4
    assert "get('x') -> 'a'  [4, 5]" in lines[4]


def test_lost_write() -> None:
    # put b completes, a concurrent get may still miss it, but later gets all see the older value
    h = [put("a", 0, 1), put("b", 2, 3), get("a", 2.5, 4), get("a", 5, 6), get("a", 7, 8)]
    result = check(h)
    assert result.ok is False
    assert result.shortest_bad_prefix == tuple(h[:4])
    assert check(h[:3]).ok is True


def test_read_of_a_value_never_written() -> None:
    result = check([put("a", 0, 1), get("zzz", 0.5, 2)])
    assert result.ok is False and result.bad_at == 2


def test_cas_claiming_success_against_a_wrong_expected_value() -> None:
    h = [put("a", 0, 1), op("cas", value="b", expected="q", call=2, ret=3, output=True)]
    assert check(h).ok is False
    assert check([h[0], replace(h[1], output=False)]).ok is True


def test_wrong_append_and_delete_outputs() -> None:
    assert check([put("a", 0, 1), op("append", value="b", call=2, ret=3, output="b")]).ok is False
    assert check([op("delete", call=0, ret=1, output=True)]).ok is False


# --- partitions, models, limits ------------------------------------------------------------------------------


def test_history_is_checked_per_key() -> None:
    h = [put("1", 0, 1, key="x"), put("1", 0, 1, key="y"), put("1", 0, 1, key="z"),
         get("1", 2, 3, key="x"), put("2", 2, 3, key="y"), get("1", 4, 5, key="y"), get(None, 4, 5, key="w")]
    result = check(h)
    assert result.ok is False and result.partitions == 4
    assert result.failing_key == "y" and result.failing_partition == 2  # keys in order: w, x, y, z
    assert all(o.key == "y" for o in result.shortest_bad_prefix) and len(result.shortest_bad_prefix) == 3
    assert check([o for o in h if o.key != "y"]).partitions == 3


def test_generic_model_single_partition() -> None:
    counter = Model(init=lambda: 0, step=lambda s, o: (o.ret is None or o.output == s + 1, s + 1))
    h = [op("incr", "a", call=0, ret=3, output=2), op("incr", "b", call=1, ret=2, output=1)]
    assert check(h, counter).ok is True and check(h, counter).partitions == 1
    bad = check([*h, op("incr", "c", call=4, ret=5, output=2)], counter)
    assert bad.ok is False and bad.failing_partition == 0 and bad.failing_key is None


def test_timeout_gives_unknown() -> None:
    # 24 overlapping puts, then an impossible read: the search must try a huge number of orders
    h = [put(str(i), 0, 10) for i in range(24)] + [put("z", 0, 10, key="y"), get("never", 11, 12)]
    start = time.monotonic()
    result = check(h, timeout=0.2)
    assert time.monotonic() - start < 2
    assert result.ok is None and not result and str(result).startswith("unknown")


def test_invalid_operations_are_rejected() -> None:
    with pytest.raises(ValueError, match="before"):
        put("a", 2, 1)
    with pytest.raises(ValueError, match="unknown key-value operation"):
        check([op("increment", call=0, ret=1)])


def test_result_default_is_consistent() -> None:
    assert check([]) == LinearizabilityResult(ok=True, partitions=0)
    assert KV_MODEL.partition([]) == []


# --- random executions -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(rng=st.randoms(use_true_random=False), n=st.integers(1, 7), unknown=st.sampled_from([0.0, 0.3]),
       mutate=st.sampled_from(["none", "get", "drop"]))
def test_agrees_with_brute_force_on_small_histories(rng: random.Random, n: int, unknown: float, mutate: str) -> None:
    h = execute(rng, n, clients=3, keys="x", unknown=unknown)
    if mutate == "get" and any(o.op in ("get", "read") and o.ret is not None for o in h):
        i = rng.choice([i for i, o in enumerate(h) if o.op in ("get", "read") and o.ret is not None])
        h[i] = replace(h[i], output=rng.choice([None, "a", "b", "c", "ab"]))
    elif mutate == "drop":  # re-run the execution with one completed write losing its effect
        writes = [i for i, o in enumerate(h) if o.op not in ("get", "read") and o.ret is not None]
        if writes:
            dropped, value = rng.choice(writes), None
            for i, o in enumerate(h):
                if o.ret is None:  # unknown-outcome ops keep their original fate: approximate by skipping
                    continue
                new, out = apply(value, o)
                h[i] = o if o.op == "put" else replace(o, output=out)
                if i != dropped:
                    value = new
    assert check(h).ok is brute_force(h)


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False), n=st.integers(1, 120), clients=st.integers(1, 6),
       unknown=st.sampled_from([0.0, 0.1]))
def test_random_executions_are_linearizable(rng: random.Random, n: int, clients: int, unknown: float) -> None:
    h = execute(rng, n, clients, keys="xyz", unknown=unknown)
    result = check(h)
    assert result.ok is True, result.explain()
    # (a read whose outcome is unknown constrains nothing: the checker drops it, and a key may go with it)
    assert result.partitions == len({o.key for o in h if o.ret is not None or o.op not in ("get", "read")})


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False), n=st.integers(1, 120), clients=st.integers(1, 6),
       unknown=st.sampled_from([0.0, 0.1]))
def test_read_of_a_never_current_value_is_found(rng: random.Random, n: int, clients: int, unknown: float) -> None:
    h = execute(rng, n, clients, keys="xy", unknown=unknown)
    gets = [i for i, o in enumerate(h) if o.op in ("get", "read") and o.ret is not None]
    if not gets:
        h.append(get("a", h[-1].call + 100, h[-1].call + 101))
        gets = [len(h) - 1]
    i = rng.choice(gets)
    h[i] = replace(h[i], output="d")  # "d" is never written (values are made of a, b, c)
    result = check(h)
    assert result.ok is False and result.failing_key == h[i].key
    assert h[i] in result.shortest_bad_prefix and result.bad_at == h[i].ret
    assert check(result.shortest_bad_prefix).ok is False


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False), n=st.integers(1, 120), clients=st.integers(1, 6))
def test_dropped_put_effect_is_found(rng: random.Random, n: int, clients: int) -> None:
    # all outcomes known; a completed put after everything else is lost, and a later get shows it
    h = execute(rng, n, clients, keys="xy")
    end = max(o.ret for o in h if o.ret is not None)
    value = None
    for o in h:
        if o.key == "x":
            value = apply(value, o)[0]
    h += [put("dropped", end + 1, end + 2), get(value, end + 3, end + 4)]
    result = check(h)
    assert result.ok is False and result.failing_key == "x"
    assert result.shortest_bad_prefix == tuple(sorted((o for o in h if o.key == "x"), key=lambda o: (o.call, o.ret)))


def test_a_thousand_operations_check_quickly() -> None:
    h = execute(random.Random(7), 1000, clients=5, keys="xyz", unknown=0.05, max_unknown=50)
    start = time.monotonic()
    result = check(h, timeout=30)
    elapsed = time.monotonic() - start
    assert result.ok is True and result.partitions == 3
    assert elapsed < 5, f"{elapsed:.2f} s"
