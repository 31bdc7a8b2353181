"""Bounded client sessions of `KVStore` (Raft thesis §6.3): expiry by the clock carried in the log.

Times are integer microseconds, as the node stamps them (`KVCommand.time_us`); `S` is one second.
"""

from __future__ import annotations

import math

import pytest

from raftlab.core.messages import Snapshot
from raftlab.machines import SESSION_EXPIRED, KVCommand, KVStore, SessionExpired
from raftlab.sim import Simulation

S = 1_000_000  # one second, in microseconds
T = 60 * S  # the session timeout of these tests


def at(command: KVCommand, time_us: int, timeout_us: int = 0) -> KVCommand:
    """`command` as a leader with `timeout_us` stamps it at `time_us`."""
    return KVCommand(command.client, command.seq, command.op, command.key, command.value, command.expected,
                     time_us, timeout_us if command.op == "register" else 0)


def run(store: KVStore, *commands: KVCommand) -> list:
    """Apply `commands` in order as log entries; their results."""
    results = []
    for c in commands:
        store.apply_transition(c)
        results.append(store.results[c.get_id()])
    return results


def bounded(timeout_us: int = T) -> KVStore:
    """A store whose log registered client 1 at time 0 with `timeout_us`."""
    store = KVStore()
    run(store, at(KVStore.register(1, 1), 0, timeout_us))
    return store


# ----- configuration and commands ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, -0.5, "60", True, math.nan, math.inf, [60]])
def test_session_timeout_must_be_a_positive_number_or_none(bad):
    with pytest.raises(ValueError, match="session_timeout"):
        KVStore(session_timeout=bad)


def test_session_timeout_is_what_stamp_puts_in_registers_only():
    assert KVStore().session_timeout is None and KVStore(0.25).session_timeout == 0.25
    store = KVStore(session_timeout=2.5)
    register = store.stamp(KVStore.register(4, 1), 123)
    assert (register.time_us, register.timeout_us) == (123, 2_500_000)
    put = store.stamp(KVStore.put(4, 2, "k", "v"), 124)
    assert (put.time_us, put.timeout_us) == (124, 0)
    assert KVStore().stamp(KVStore.register(4, 1), 5).timeout_us == 0  # None: the leader proposes no timeout
    assert register.get_id() == (4, 1)  # stamping keeps the id: a retry stamped again is the same command


@pytest.mark.parametrize("fields, why", [
    ((1, 1, "put", "k", "v", None, -1), "time_us"),
    ((1, 1, "put", "k", "v", None, 1.5), "time_us"),
    ((1, 1, "put", "k", "v", None, True), "time_us"),
    ((1, 1, "put", "k", "v", None, 2**63), "time_us"),
    ((1, 1, "register", "", None, None, 0, -1), "timeout_us"),
    ((1, 1, "put", "k", "v", None, 0, 5), "timeout_us is only for 'register'"),
    ((1, 1, "register", "k"), "key must be ''"),
    ((1, 1, "register", "", "v"), "value must be None"),
    ((1, 1, "register", "", None, "x"), "expected is only for 'cas'"),
])
def test_bad_time_fields_are_refused_naming_the_field(fields, why):
    with pytest.raises(ValueError, match=why):
        KVCommand(*fields)


# ----- expiry -----------------------------------------------------------------------------------------------
def test_without_a_timeout_in_the_log_sessions_never_expire_and_need_no_registration():
    store = KVStore(session_timeout=1.0)  # (configured: but applying follows the log, which has no timeout)
    assert run(store, at(KVStore.put(5, 1, "k", "a"), 0), at(KVStore.append(5, 2, "k", "b"), 10**12),
               at(KVStore.register(6, 1), 10**12, 0)) == [None, "ab", None]
    assert store.timeout_us == 0 and set(store.sessions) == {5, 6}
    assert run(store, at(KVStore.append(5, 2, "k", "b"), 10**13)) == ["ab"]  # a late retry: deduplicated
    assert store.data["k"] == "ab"


def test_a_client_without_a_session_is_refused_once_a_timeout_is_registered():
    store = bounded()
    assert run(store, at(KVStore.put(2, 1, "k", "v"), S)) == [SESSION_EXPIRED]
    assert "k" not in store.data and 2 not in store.sessions  # not applied; no session made
    assert isinstance(SESSION_EXPIRED, SessionExpired) and SessionExpired() == SESSION_EXPIRED
    assert run(store, at(KVStore.register(2, 2), S), at(KVStore.put(2, 3, "k", "v"), S)) == [None, None]
    assert store.data["k"] == "v" and store.sessions[2] == (3, None)


def test_an_idle_session_expires_and_a_late_retry_is_refused_never_applied_twice():
    store = bounded()
    append = KVStore.append(1, 2, "k", "x")
    assert run(store, at(append, 10 * S)) == ["x"]
    assert run(store, at(append, 10 * S + T)) == ["x"]  # idle exactly T: still there, the retry is answered
    # another client's command moves the clock past T of idleness: client 1's session goes
    assert run(store, at(KVStore.register(2, 1), 10 * S + 2 * T + 1)) == [None]
    assert 1 not in store.sessions and 1 not in store.last_active
    assert run(store, at(append, 10 * S + 2 * T + 2)) == [SESSION_EXPIRED]  # the late retry: refused
    assert store.data["k"] == "x"  # applied once
    # registering again does not let the old command through: its seq is behind the new session's
    assert run(store, at(KVStore.register(1, 3), 11 * S + 2 * T), at(append, 11 * S + 2 * T)) == [None, None]
    assert store.data["k"] == "x"


def test_every_command_refreshes_its_session():
    store = bounded()
    for n in range(2, 50):  # a command every T/2, for 24 timeouts: the session stays
        assert run(store, at(KVStore.append(1, n, "k", "."), n * T // 2)) == ["." * (n - 1)]
    assert store.last_active[1] == 49 * T // 2


def test_the_clock_is_the_largest_time_in_the_log_so_a_lagging_leader_cannot_revive_a_session():
    store = bounded()
    run(store, at(KVStore.register(2, 1), 5 * T))  # client 1 expires here (idle 5 T)
    assert store.clock_us == 5 * T and 1 not in store.sessions
    # a later leader whose wall clock lags: the clock stays, client 2 counts as active at the clock
    assert run(store, at(KVStore.put(2, 2, "k", "v"), T), at(KVStore.put(1, 2, "k", "w"), T)) == [None,
                                                                                                 SESSION_EXPIRED]
    assert store.clock_us == 5 * T and store.last_active[2] == 5 * T and store.data["k"] == "v"


def test_the_session_table_stays_bounded_whatever_the_number_of_clients():
    store = bounded()
    for client in range(2, 2002):  # 2,000 clients, each once, over about T
        run(store, at(KVStore.register(client, 1), client * (T // 2000)), at(KVStore.put(client, 2, "k", "v"),
                                                                              client * (T // 2000)))
    assert len(store.sessions) <= 2001
    run(store, at(KVStore.register(9999, 1), 3 * T))  # then time passes: all of them are idle beyond T
    assert set(store.sessions) == set(store.last_active) == {9999}
    oldest_first = list(store.last_active.values())
    assert oldest_first == sorted(oldest_first)


def test_the_latest_registered_timeout_applies_and_a_register_without_one_changes_nothing():
    store = bounded(T)
    run(store, at(KVStore.register(2, 1), S, 0))  # (from a leader configured without a timeout)
    assert store.timeout_us == T
    run(store, at(KVStore.register(3, 1), 2 * S, 10 * S))  # a leader configured with 10 s
    assert store.timeout_us == 10 * S
    run(store, at(KVStore.register(4, 1), 11 * S + 1, 0))
    assert set(store.sessions) == {3, 4}  # 1 (at 0) and 2 (at 1 s) idle longer than 10 s at 11 s, not 3 (2 s)


def test_replicas_configured_with_different_timeouts_apply_the_log_identically():
    log = [at(KVStore.register(1, 1), 0, T), at(KVStore.put(1, 2, "a", "1"), S),
           at(KVStore.register(2, 1), 2 * T, 0), at(KVStore.put(1, 3, "a", "2"), 2 * T),
           at(KVStore.put(2, 2, "b", "1"), 3 * T)]
    stores = [KVStore(), KVStore(1.0), KVStore(10**6)]
    results = [run(s, *log) for s in stores]
    assert results[0] == results[1] == results[2] == [None, None, None, SESSION_EXPIRED, None]
    assert stores[0]._state() == stores[1]._state() == stores[2]._state()


# ----- snapshots --------------------------------------------------------------------------------------------
def test_snapshots_keep_the_clock_the_timeout_and_last_active_times():
    store = bounded()
    run(store, at(KVStore.register(2, 1), T // 2), at(KVStore.put(2, 2, "k", "v"), T // 2),
        at(KVStore.register(3, 1), T))
    data = store.create_snapshot(4, 1).data
    assert data == ((("k", "v"),), ((1, (1, None), 0), (2, (2, None), T // 2), (3, (1, None), T)), T, T)
    fresh = KVStore()
    fresh.set_snapshot(Snapshot(4, 1, data))
    assert fresh._state() == data and fresh.clock_us == T and fresh.timeout_us == T
    assert list(fresh.last_active) == [1, 2, 3]  # least recently active first, as on the original
    later = [at(KVStore.register(4, 1), T + T // 4), at(KVStore.put(2, 3, "k", "w"), T + T // 4),
             at(KVStore.put(1, 2, "k", "x"), T + T // 4)]  # (1 idle for more than T, 2 for less)
    assert run(fresh, *later) == run(store, *later) == [None, None, SESSION_EXPIRED]
    assert fresh._state() == store._state()


def test_a_store_that_never_saw_a_time_snapshots_in_the_old_form_and_old_data_loads():
    store = KVStore()
    run(store, KVStore.put(7, 1, "k", "v"), KVStore.append(9, 1, "k", "w"))
    assert store._state() == ((("k", "vw"),), ((7, (1, None)), (9, (1, "vw"))))  # as before bounded sessions
    old = ((("k", "vw"),), ((7, (1, None)), (9, (1, "vw"))))  # the 2-tuple form of every existing snapshot
    restored = KVStore(session_timeout=60)
    restored.set_snapshot(Snapshot(2, 1, old))
    assert dict(restored.sessions) == {7: (1, None), 9: (1, "vw")} and restored.results[(9, 1)] == "vw"
    # its sessions are as old as time 0: once a timeout is registered, they expire like any idle session
    assert run(restored, KVStore.append(9, 1, "k", "w"), at(KVStore.register(1, 1), 2 * T, T)) == ["vw", None]
    assert set(restored.sessions) == {1}


# ----- in the simulator: every replica expires the same sessions at the same index ---------------------------
def test_expiry_by_log_time_is_the_same_on_every_replica_of_a_simulated_cluster():
    # each replica configured differently: only the leader's stamps (the log) decide
    timeouts = iter([1.0, None, 5.0, 0.5, 1.0])
    sim = Simulation(n=5, seed=7, state_machine=lambda: KVStore(session_timeout=next(timeouts, 1.0)),
                     snapshot_delta=7, noop_transition=KVStore.NOOP)
    sim.run_until(lambda s: s.leader() is not None, timeout=5.0)
    proposer = KVStore(session_timeout=1.0)  # what a node configured with 1 s stamps

    def one(command: KVCommand, k: int = 5):
        return sim.one(proposer.stamp(command, sim.now_us), k=k, timeout=10.0).result

    assert one(KVStore.register(1, 1)) is None
    assert one(KVStore.append(1, 2, "k", "a")) == "a"
    for client in range(2, 12):
        assert one(KVStore.register(client, 1)) is None
    sim.crash(3)
    sim.run(1.5)  # client 1 and the others idle for over a second
    assert one(KVStore.register(20, 1), k=4) is None  # whose clock expires them everywhere
    assert one(KVStore.append(1, 2, "k", "a"), k=4) == SESSION_EXPIRED  # a late retry of an applied command
    sim.restart(3)
    sim.run_until(lambda s: len({r.last_applied for r in s.replicas}) == 1, timeout=10.0)
    sim.run(1.0)
    machines = [sim.replicas[i].machine for i in sim.ids]
    assert all(dict(m.sessions) == {20: (1, None)} for m in machines), [dict(m.sessions) for m in machines]
    assert all(m.data == {"k": "a"} for m in machines)  # applied once, on every replica
    assert len({m.clock_us for m in machines}) == 1 and all(m.timeout_us == S for m in machines)
    assert len({repr(m._state()) for m in machines}) == 1
    assert any(sim.replicas[i].snapshot_index > 0 for i in sim.ids)  # (snapshots carried the sessions too)
