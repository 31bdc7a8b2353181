"""Share a run as a short text: `share(sim)` writes it, `from_shared(text)` replays it exactly.

A run is decided by how its `Simulation` was made (size, seed, timeouts, network, machine, options)
and by its interventions (`History`), so that is all the text holds. It reads ``raftlab-run/2:`` (the
format, version 2) and then the base64url of zlib-compressed JSON::

    {"raftlab": "0.1.0", "made": {...}, "interventions": [[step, time_us, name, args, kwargs], ...],
     "at": step shown, "done": interventions made by then, "now": time shown (microseconds),
     "end": the branch's last step, "hash": the trace's hash there}

An intervention is made *at* a step, after it: several may be made at the step shown, and after a
rewind some made there may belong to the future, so ``done`` counts those made (of the branch shown,
``len(history.interventions)``). `from_shared` makes the simulation again, steps to step ``at``,
replays the first ``done`` interventions, sets the time to ``now`` and checks the trace's hash, so that
a run that would not come out the same (another raftlab, another replica class) says so instead of
showing something else; the rest of the branch is its future, replayed as you step. A text of version 1
(no ``done``, no ``now``) still opens: the interventions made at its step are replayed one by one until
the hash matches.

Nothing here runs code named by the text: values are JSON, a few immutable raftlab types (client
commands, configurations) rebuilt through their own validating constructors, intervention names from
the fixed set `INTERVENTIONS` with their arguments bound to the method's signature first, network
settings from `NETWORK_SETTINGS`; a replica class is imported only from a ``raftlab.`` module. A class
made at runtime as a subclass that only sets `CLASS_CONSTANTS` (a transcript's ``max-entries=K``) is
recorded as its base and those constants, and made again the same way. What a text can ask is bounded
(`MAX_TEXT`, `MAX_NODES`, `MAX_STEPS`, `MAX_INTERVENTIONS`, `MAX_DEPTH`), so that opening one never hangs.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib
import importlib.metadata
import inspect
import json
import re
import zlib
from typing import Any

from ..core import Configuration, Replica
from ..machines import Counter, KVStore
from ..machines.counter import Add
from ..machines.kv import KVCommand
from .network import LinkModel, NetworkModel
from .simulation import Simulation

VERSION = 2
"""The format's version, written after ``raftlab-run/``."""
PREFIX = f"raftlab-run/{VERSION}:"
"""How a shared run starts: the format and its version."""
READS = (1, 2)
"""The versions `from_shared` reads."""

INTERVENTIONS = frozenset({
    "crash", "restart", "force_timeout", "force_heartbeat", "pause", "partition", "ring", "heal", "disconnect",
    "connect", "cut", "uncut", "drop_next", "drop_message", "deliver_message", "duplicate_message", "submit",
    "transfer_leadership", "read", "set_clock_rate", "add_node", "promote", "remove_node",
    "network", "link", "clear_link"})
"""The interventions a shared run may hold: the `History`'s (a test keeps this list complete)."""
NETWORK_SETTINGS = frozenset({"latency", "drop", "duplicate"})
"""The settings of the network a ``"network"`` intervention may change (`NetworkModel`'s fields)."""
CLASS_CONSTANTS = frozenset({"MAX_ENTRIES_PER_MESSAGE"})
"""The `Replica` class attributes a subclass made at runtime may set and still be shared."""

_VALUES: dict[str, type] = {"KVCommand": KVCommand, "Add": Add, "Configuration": Configuration}
_MACHINES: dict[str, type] = {"kv": KVStore, "counter": Counter}
MAX_TEXT = 1 << 20  # characters: a shared run longer than this is refused before it is decoded
MAX_NODES = 64  # nodes a shared run may have, at the start and added along the way
MAX_STEPS = 250_000  # steps a shared run may reach (about ten seconds of replay)
MAX_INTERVENTIONS = 20_000  # interventions a shared run may hold
MAX_DEPTH = 16  # how deeply the values of a shared run may nest
_MAX_US = 1 << 53  # microseconds: a time beyond this (285 years) is not a run's
_MADE = frozenset({"n", "seed", "heartbeat_timeout", "election_timeout", "snapshot_delta", "check_invariants",
                   "options", "network", "machine", "replica", "replica_constants"})  # what "made" may hold
_OWN = frozenset({"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__firstlineno__",
                  "__static_attributes__", "__parameters__", "__slotnames__", "__orig_bases__"})  # any class's own


def share(sim: Simulation) -> str:
    """The run of `sim` as a short text (see the module docstring): its making, the interventions of
    the branch shown (past and future), the step it is at, the interventions made by then and the hash
    of its trace there. Raises ValueError, saying why, for a run that cannot be shared."""
    if not sim.record_trace:
        raise ValueError("sim: a Simulation(record_trace=False) keeps no history to share")
    machine = next((name for name, cls in _MACHINES.items() if sim.state_machine is cls), None)
    if machine is None:
        raise ValueError(f"sim: only a run of a raftlab machine ({', '.join(_MACHINES)}) can be shared, "
                         f"not of {sim.state_machine!r}")
    if sim.noop != _MACHINES[machine].NOOP:  # type: ignore[attr-defined]
        raise ValueError(f"sim: a run with its own noop_transition ({sim.noop!r}) cannot be shared")
    history = sim.history
    interventions = history.interventions + history.future
    if sim.steps > MAX_STEPS or sim.history_end > MAX_STEPS:
        raise ValueError(f"sim: a run of more than {MAX_STEPS} steps cannot be shared (this one reaches step "
                         f"{max(sim.steps, sim.history_end)})")
    if len(interventions) > MAX_INTERVENTIONS:
        raise ValueError(f"sim: a run of more than {MAX_INTERVENTIONS} interventions cannot be shared")
    replica, constants = _class_record(sim.replica_class)
    made = dict(sim.made, machine=machine, replica=replica)
    if constants:
        made["replica_constants"] = constants
    document = {"raftlab": _version(), "made": _encode(made),
                "interventions": [_encode(list(i)) for i in interventions],
                "at": sim.steps, "done": len(history.interventions), "now": sim.now_us, "end": sim.history_end,
                "hash": sim.trace.hash()}
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)
    return PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def shared_replica_class(text: str) -> str:
    """The name (``module:qualname``) of the replica class the run `text` describes was made with, for
    example to tell whether `from_shared` needs its ``replica_class`` (a class outside raftlab)."""
    _, document = _decode_text(text)
    try:
        return str(_made(document)["replica"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"text: not a shared run that this raftlab ({_version()}) can read: {error}") from error


def needs_replica_class(text: str) -> bool:
    """Whether `from_shared` needs ``replica_class=`` to replay `text`: the run used a class from
    outside raftlab (a student's), which is never imported."""
    return not _inside_raftlab(shared_replica_class(text))


def from_shared(text: str, *, replica_class: type[Replica] | None = None) -> Simulation:
    """The simulation `text` (from `share`) describes, replayed to the step it was shared at; stepping
    on replays the rest of its branch. `replica_class` is needed when the run used a class outside
    raftlab (a student's): it must be that class (the same ``module:qualname``). Raises ValueError,
    saying why, for a text that is not a shared run, asks more than the bounds allow, names another
    replica class than `replica_class`, or does not replay exactly."""
    version, document = _decode_text(text)
    try:
        made = _made(document)
        replica = made.pop("replica")
        constants = made.pop("replica_constants", {})
        cls = _replica_class(replica, constants, replica_class)
        machine = _MACHINES[made.pop("machine")]
        latency, drop, duplicate, links = made.pop("network")
        network = NetworkModel(latency=latency, drop=drop, duplicate=duplicate)
        for source, destination, link in links:
            network.links[(source, destination)] = LinkModel(*link)
        raw = document["interventions"]
        if not isinstance(raw, list) or len(raw) > MAX_INTERVENTIONS:
            raise ValueError(f"interventions must be a list of at most {MAX_INTERVENTIONS}")
        interventions = [_intervention(_decode(i)) for i in raw]
        at, end, expected = document["at"], document["end"], document["hash"]
        done = document["done"] if version >= 2 else None
        now = document["now"] if version >= 2 else None
        options = made.pop("options")
        _bound(made, interventions, at, end, done, now)
        sim = Simulation(network=network, state_machine=machine, replica_class=cls, **made, **options)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as error:
        raise ValueError(f"text: not a shared run that this raftlab ({_version()}) can read: {error}") from error
    sim.history.load(interventions, end)
    failed = ""
    try:
        while sim.steps < at and sim.step() is not None:
            pass
        if done is not None:
            _replay_made(sim, done, at)
            if sim.steps == at and len(sim.history.interventions) == done and now is not None:
                if now < sim.now_us:
                    raise ValueError(f"the time shown, {now} us, is before the replay's, {sim.now_us} us")
                sim.now_us = now
        else:  # version 1: the interventions made at step `at` are not counted; the hash tells how many
            while (sim.trace.hash() != expected and sim.steps == at and sim.history.future
                   and sim.history.future[0][0] <= at):
                _replay_made(sim, len(sim.history.interventions) + 1, at)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RuntimeError) as error:
        failed = f"; an intervention failed: {type(error).__name__}: {error}"  # (a node or message not there)
    if failed or sim.steps != at or (done is not None and len(sim.history.interventions) != done) or \
            sim.trace.hash() != expected:
        raise ValueError(f"text: the shared run did not replay exactly (made with raftlab "
                         f"{document.get('raftlab')}, this is {_version()}; replica class {replica!r}): it reached "
                         f"step {sim.steps} of {at}, with another trace{failed}")
    return sim


def _replay_made(sim: Simulation, done: int, at: int) -> None:
    """Replay the interventions of `sim`'s future made at step `at` until `done` have been made."""
    history = sim.history
    while len(history.interventions) < done and history.future and history.future[0][0] <= at:
        history._replay(history.future.pop(0))


def _made(document: dict) -> dict:
    made = _decode(document.get("made"))
    if not isinstance(made, dict) or not all(isinstance(k, str) for k in made):
        raise ValueError("its 'made' is not the settings of a simulation")
    unknown = set(made) - _MADE
    if unknown:
        raise ValueError(f"its 'made' has {sorted(unknown)}, not settings of a simulation")
    if not isinstance(made.get("replica"), str):
        raise ValueError("it names no replica class")
    return made


def _bound(made: dict, interventions: list[tuple[int, int, str, tuple, dict]], at: Any, end: Any, done: Any,
           now: Any) -> None:
    """Refuse a run that asks more than the bounds allow (so that opening it could take for ever)."""
    for name, value, low, high in (("at", at, 0, MAX_STEPS), ("end", end, 0, MAX_STEPS),
                                   ("done", done, 0, len(interventions)), ("now", now, 0, _MAX_US)):
        if (name in ("done", "now") and value is None):
            continue
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{name} must be an int from {low} to {high}, not {value!r}")
    if at > end:
        raise ValueError(f"a shared run's steps must satisfy at <= end, not at={at!r}, end={end!r}")
    n = made.get("n")
    added = sum(1 for i in interventions if i[2] == "add_node")
    if type(n) is not int or not 1 <= n + added <= MAX_NODES:
        raise ValueError(f"n (with the nodes added) must be an int from 1 to {MAX_NODES}, not {n!r} (+{added})")


# ----- values ------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """A value as JSON: tuples, sets and the types of `_VALUES` tagged, so that they come back as they were."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"s": [_encode(v) for v in sorted(value)]}
    if isinstance(value, dict):
        return {"m": [[_encode(k), _encode(v)] for k, v in value.items()]}
    name = type(value).__name__
    if _VALUES.get(name) is type(value):
        return {"d": name, "f": {f.name: _encode(getattr(value, f.name))
                                 for f in dataclasses.fields(value)}}  # type: ignore[arg-type]
    raise ValueError(f"sim: a run holding {value!r} cannot be shared (only plain values, client commands and "
                     f"configurations)")


def _decode(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"values nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    inner = depth + 1
    if isinstance(value, list):
        return [_decode(v, inner) for v in value]
    if isinstance(value, dict):
        if set(value) == {"t"} and isinstance(value["t"], list):
            return tuple(_decode(v, inner) for v in value["t"])
        if set(value) == {"s"} and isinstance(value["s"], list):
            return frozenset(_hashable(_decode(v, inner)) for v in value["s"])
        if set(value) == {"m"} and isinstance(value["m"], list) and all(
                isinstance(p, list) and len(p) == 2 for p in value["m"]):
            return {_hashable(_decode(k, inner)): _decode(v, inner) for k, v in value["m"]}
        if set(value) == {"d", "f"} and value["d"] in _VALUES and isinstance(value["f"], dict):
            return _VALUES[value["d"]](**{k: _decode(v, inner) for k, v in value["f"].items()})
    raise ValueError(f"unknown value {value!r}"[:200])


def _hashable(value: Any) -> Any:
    value = tuple(value) if isinstance(value, list) else value
    hash(value)  # TypeError for a value that cannot be a key
    return value


def _intervention(value: Any) -> tuple[int, int, str, tuple, dict]:
    """An intervention of the text, checked: its name one of `INTERVENTIONS`, its arguments bound to
    the method it calls (a "network" one names a setting of `NETWORK_SETTINGS`)."""
    if not (isinstance(value, list) and len(value) == 5):
        raise ValueError(f"an intervention is [step, time_us, name, args, kwargs], not {value!r}"[:200])
    step, time_us, name, args, kwargs = value
    if type(step) is not int or type(time_us) is not int or name not in INTERVENTIONS or not isinstance(
            args, tuple) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"not an intervention: {value!r}"[:200])
    if not (0 <= step <= MAX_STEPS and 0 <= time_us <= _MAX_US):
        raise ValueError(f"an intervention's step and time must be from 0 to {MAX_STEPS} and {_MAX_US}: {value!r}")
    if name == "network":
        if len(args) != 2 or kwargs or args[0] not in NETWORK_SETTINGS:
            raise ValueError(f"a network intervention is (setting, value), a setting one of "
                             f"{sorted(NETWORK_SETTINGS)}, not {args!r}"[:200])
        return step, time_us, name, args, kwargs
    method = {"link": NetworkModel.set_link, "clear_link": NetworkModel.clear_link}.get(name) or getattr(
        Simulation, name)
    try:
        inspect.signature(method).bind(None, *args, **kwargs)
    except TypeError as error:
        raise ValueError(f"intervention {name}{args!r}: {error}"[:200]) from error
    return step, time_us, name, args, kwargs


def _decode_text(text: str) -> tuple[int, dict]:
    """The version and the document of a shared run's text."""
    if not isinstance(text, str):
        raise ValueError(f"text: a shared run is a str starting with {PREFIX!r}, not {type(text).__name__}")
    text = text.strip()
    match = re.match(r"raftlab-run/(\d{1,6}):", text)
    if match is None:
        raise ValueError(f"text: a shared run starts with {PREFIX!r} (from RaftLab.share() or raftlab.sim.share)")
    version = int(match.group(1))
    if version not in READS:
        newer = "a newer" if version > VERSION else "an older"
        raise ValueError(f"text: a shared run of format version {version} ({newer} raftlab's); this raftlab "
                         f"({_version()}) reads versions {', '.join(map(str, READS))}")
    body = text[match.end():]
    if len(body) > MAX_TEXT:
        raise ValueError(f"text: a shared run is at most {MAX_TEXT} characters, not {len(body)}")
    try:
        unpacked = zlib.decompressobj().decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)),
                                                   64 * MAX_TEXT)
        document = json.loads(unpacked)
    except (binascii.Error, zlib.error, ValueError, RecursionError) as error:
        why = "nested too deeply" if isinstance(error, RecursionError) else error
        raise ValueError(f"text: not a shared run (it does not decode: {why}); was it copied whole?") from None
    if not isinstance(document, dict):
        raise ValueError("text: not a shared run (no document inside)")
    return version, document


# ----- classes -------------------------------------------------------------------------------------------
def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _inside_raftlab(name: str) -> bool:
    module = name.partition(":")[0]
    return module == "raftlab" or module.startswith("raftlab.")


def _class_record(cls: type) -> tuple[str, dict[str, Any]]:
    """How a shared run names its replica class: ``module:qualname``, and the `CLASS_CONSTANTS` it sets
    when it was made at runtime (``type("LimitedReplica", (Replica,), {"MAX_ENTRIES_PER_MESSAGE": 2})``)
    and cannot be imported by its name. Raises ValueError for another class that cannot be."""
    name = _class_name(cls)
    if not _inside_raftlab(name):
        return name, {}  # a student's: never imported, passed back to from_shared
    try:
        if _import_class(name) is cls:
            return name, {}
    except ValueError:
        pass
    own = {k: v for k, v in vars(cls).items() if k not in _OWN}
    if len(cls.__bases__) == 1 and set(own) <= CLASS_CONSTANTS and all(type(v) is int for v in own.values()):
        base, constants = _class_record(cls.__bases__[0])
        return base, {**constants, **own}
    raise ValueError(f"sim: the replica class {name} cannot be imported back by its name (made at runtime?), "
                     f"so a run of it cannot be shared")


def _replica_class(name: str, constants: Any, given: type[Replica] | None) -> type[Replica]:
    """The replica class a shared run names (`name`, made again with `constants` if any), or `given`,
    which must be it."""
    if not (isinstance(constants, dict) and set(constants) <= CLASS_CONSTANTS
            and all(type(v) is int and v >= 1 for v in constants.values())):
        raise ValueError(f"replica_constants must set only {sorted(CLASS_CONSTANTS)} to positive ints, "
                         f"not {constants!r}")
    if given is not None:
        if not (isinstance(given, type) and issubclass(given, Replica)):
            raise ValueError(f"replica_class must be a subclass of Replica, not {given!r}")
        try:
            record = _class_record(given)
        except ValueError:
            record = (_class_name(given), {})
        if record == (name, constants):
            return given
        if _class_name(given) != name:
            raise ValueError(f"the run used the replica class {name}, not {_class_name(given)}: pass that "
                             f"one as replica_class=... (or none, for a class of raftlab)")
        base = given
    else:
        base = _import_class(name)
    if not constants:
        return base
    return type(f"Limited{base.__name__}", (base,), dict(constants))  # as a transcript's max-entries=K does


def _import_class(name: str) -> type[Replica]:
    module, _, qualname = name.partition(":")
    if not _inside_raftlab(name):
        raise ValueError(f"the run used the replica class {name}, outside raftlab: pass it as "
                         f"replica_class=... to replay the run")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"the run used the replica class {name}, which this raftlab ({_version()}) does not "
                         f"have: {error}") from None
    if not (isinstance(value, type) and issubclass(value, Replica)):
        raise ValueError(f"{name} is not a Replica class")
    return value


def _version() -> str:
    """raftlab's version, from the installed package's metadata (the sim layer does not import the package)."""
    try:
        return importlib.metadata.version("raftlab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
