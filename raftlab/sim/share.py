"""Share a run as a short text: `share(sim)` writes it, `from_shared(text)` replays it exactly.

A run is decided by how its `Simulation` was made (size, seed, timeouts, network, machine, options)
and by its interventions (`History`), so that is all the text holds. It reads ``raftlab-run/1:`` (the
format, version 1) and then the base64url of zlib-compressed JSON::

    {"raftlab": "0.1.0", "made": {...}, "interventions": [[step, time_us, name, args, kwargs], ...],
     "at": step shown, "end": the branch's last step, "hash": the trace's hash at step "at"}

`from_shared` makes the simulation again, replays the interventions up to step ``at`` and checks the
trace's hash, so that a run that would not come out the same (another raftlab, another replica class)
says so instead of showing something else; the rest of the branch is its future, replayed as you step.

Nothing here runs code named by the text: values are JSON, a few immutable raftlab types (client
commands, configurations) rebuilt through their own validating constructors, and intervention names
from the fixed set `INTERVENTIONS`; a replica class is imported only from a ``raftlab.`` module.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib
import importlib.metadata
import json
import zlib
from typing import Any

from ..core import Configuration, Replica
from ..machines import Counter, KVStore
from ..machines.counter import Add
from ..machines.kv import KVCommand
from .network import LinkModel, NetworkModel
from .simulation import Simulation

PREFIX = "raftlab-run/1:"
"""How a shared run starts: the format and its version."""

INTERVENTIONS = frozenset({
    "crash", "restart", "force_timeout", "force_heartbeat", "pause", "partition", "ring", "heal", "disconnect",
    "connect", "cut", "uncut", "drop_next", "drop_message", "deliver_message", "duplicate_message", "submit",
    "transfer_leadership", "read", "set_clock_rate", "add_node", "promote", "remove_node",
    "network", "link", "clear_link"})
"""The interventions a shared run may hold: the `History`'s (a test keeps this list complete)."""

_VALUES: dict[str, type] = {"KVCommand": KVCommand, "Add": Add, "Configuration": Configuration}
_MACHINES: dict[str, type] = {"kv": KVStore, "counter": Counter}
MAX_TEXT = 1 << 20  # characters: a shared run longer than this is refused before it is decoded


def share(sim: Simulation) -> str:
    """The run of `sim` as a short text (see the module docstring): its making, the interventions of
    the branch shown (past and future), the step it is at and the hash of its trace there."""
    if not sim.record_trace:
        raise ValueError("sim: a Simulation(record_trace=False) keeps no history to share")
    machine = next((name for name, cls in _MACHINES.items() if sim.state_machine is cls), None)
    if machine is None:
        raise ValueError(f"sim: only a run of a raftlab machine ({', '.join(_MACHINES)}) can be shared, "
                         f"not of {sim.state_machine!r}")
    if sim.noop != _MACHINES[machine].NOOP:  # type: ignore[attr-defined]
        raise ValueError(f"sim: a run with its own noop_transition ({sim.noop!r}) cannot be shared")
    made = dict(sim.made, machine=machine, replica=_class_name(sim.replica_class))
    history = sim.history
    document = {"raftlab": _version(), "made": _encode(made),
                "interventions": [_encode(list(i)) for i in history.interventions + history.future],
                "at": sim.steps, "end": sim.history_end, "hash": sim.trace.hash()}
    packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)
    return PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def from_shared(text: str, *, replica_class: type[Replica] | None = None) -> Simulation:
    """The simulation `text` (from `share`) describes, replayed to the step it was shared at; stepping
    on replays the rest of its branch. `replica_class` is needed when the run used a class outside
    raftlab (a student's): it must be that class. Raises ValueError, saying why, for a text that is not
    a shared run or does not replay exactly."""
    document = _decode_text(text)
    try:
        made = _decode(document["made"])
        replica = made.pop("replica")
        cls = replica_class if replica_class is not None else _import_class(replica)
        machine = _MACHINES[made.pop("machine")]
        latency, drop, duplicate, links = made.pop("network")
        network = NetworkModel(latency=latency, drop=drop, duplicate=duplicate)
        for source, destination, link in links:
            network.links[(source, destination)] = LinkModel(*link)
        interventions = [_intervention(_decode(i)) for i in document["interventions"]]
        at, end, expected = document["at"], document["end"], document["hash"]
        options = made.pop("options")
        sim = Simulation(network=network, state_machine=machine, replica_class=cls, **made, **options)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"text: not a shared run that this raftlab ({_version()}) can read: {error}") from error
    if type(at) is not int or type(end) is not int or not 0 <= at <= end:
        raise ValueError(f"text: a shared run's steps must satisfy 0 <= at <= end, not at={at!r}, end={end!r}")
    sim.history.load(interventions, end)
    failed = ""
    try:
        while sim.steps < at and sim.step() is not None:
            pass
    except ValueError as error:  # an intervention that no longer applies (to a node or message not there)
        failed = f"; an intervention failed: {error}"
    if failed or sim.steps != at or sim.trace.hash() != expected:
        raise ValueError(f"text: the shared run did not replay exactly (made with raftlab "
                         f"{document.get('raftlab')}, this is {_version()}; replica class {replica!r}): it reached "
                         f"step {sim.steps} of {at}, with another trace{failed}")
    return sim


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


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"t"}:
            return tuple(_decode(v) for v in value["t"])
        if set(value) == {"s"}:
            return frozenset(_decode(v) for v in value["s"])
        if set(value) == {"m"}:
            return {_hashable(_decode(k)): _decode(v) for k, v in value["m"]}
        if set(value) == {"d", "f"} and value["d"] in _VALUES and isinstance(value["f"], dict):
            return _VALUES[value["d"]](**{k: _decode(v) for k, v in value["f"].items()})
    raise ValueError(f"unknown value {value!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _intervention(value: Any) -> tuple[int, int, str, tuple, dict]:
    if not (isinstance(value, list) and len(value) == 5):
        raise ValueError(f"an intervention is [step, time_us, name, args, kwargs], not {value!r}")
    step, time_us, name, args, kwargs = value
    if type(step) is not int or type(time_us) is not int or name not in INTERVENTIONS or not isinstance(
            args, tuple) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"not an intervention: {value!r}")
    return step, time_us, name, args, kwargs


def _decode_text(text: str) -> dict:
    if not isinstance(text, str) or not text.strip().startswith(PREFIX):
        raise ValueError(f"text: a shared run starts with {PREFIX!r} (from RaftLab.share() or raftlab.sim.share)")
    body = text.strip()[len(PREFIX):]
    if len(body) > MAX_TEXT:
        raise ValueError(f"text: a shared run is at most {MAX_TEXT} characters, not {len(body)}")
    try:
        unpacked = zlib.decompressobj().decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)),
                                                   64 * MAX_TEXT)
        document = json.loads(unpacked)
    except (binascii.Error, zlib.error, ValueError) as error:
        raise ValueError(f"text: not a shared run (it does not decode: {error}); was it copied whole?") from error
    if not isinstance(document, dict):
        raise ValueError("text: not a shared run (no document inside)")
    return document


# ----- classes -------------------------------------------------------------------------------------------
def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(name: str) -> type[Replica]:
    module, _, qualname = name.partition(":")
    if not (module == "raftlab" or module.startswith("raftlab.")):
        raise ValueError(f"the run used the replica class {name}, outside raftlab: pass it as "
                         f"replica_class=... to replay the run")
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    if not (isinstance(value, type) and issubclass(value, Replica)):
        raise ValueError(f"{name} is not a Replica class")
    return value


def _version() -> str:
    """raftlab's version, from the installed package's metadata (the sim layer does not import the package)."""
    try:
        return importlib.metadata.version("raftlab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
