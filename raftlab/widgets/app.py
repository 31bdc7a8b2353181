"""`RaftLab`: a Raft cluster in a notebook, to step, break, rewind and read.

Only standard ipywidgets (JupyterLab 4, Notebook 7, Voilà). Animation is the front end's
`ipywidgets.Play`: no threads, no sleeping. Every control calls the `Simulation`, then one
`_refresh()` redraws everything from ``sim.frame()`` and the trace.
"""

from __future__ import annotations

import functools
import html
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..core import Configuration, EventKind, ReadState, Replica, TransitionState
from ..machines import Add, KVCommand, KVStore
from ..core.messages import AppendEntryRequest, AppendEntryResponse
from ..sim import Frame, NetworkModel, ReadRequest, SimKind, Simulation, Submission, TraceEvent, describe
from ..sim import recipes
from ..sim.share import from_shared, needs_replica_class, share
from ..sim.transcript import TRANSCRIPTS, Transcript, load_scenario
from ..viz import GraphView, LogView, TimelineView
from ..viz.narration import CATEGORIES, category, narration_columns, narration_list

NOTABLE = frozenset({*EventKind.ROLE_CHANGES, EventKind.COMMITTED})
"""Event kinds at which "Next notable" stops."""


def notable(event: TraceEvent) -> bool:
    """A change of role or a commit (a follower that only moves to a newer term is not a change of role)."""
    return event.kind in NOTABLE and not (
        event.kind == EventKind.BECAME_FOLLOWER and event.data.get("was") == "follower")

NOTABLE_LIMIT = 5000  # the most steps "Next notable" takes (it also stops after an election timeout of quiet)
_NOTABLE_SAID = "<b>Next notable</b>"  # how what it says starts


def _quiet(frame: Frame, events: list[TraceEvent]) -> str:
    """What a span without notable events held, as the cluster stands at its end (`frame`): "the cluster
    is stable; heartbeats only" when it is (a leader, a majority up, nothing waiting to commit, only
    empty AppendEntries), else what keeps it from moving on (nodes down, no majority, no leader, entries
    waiting uncommitted) and the messages sent."""
    sent = [e.data["message"] for e in events if e.kind == SimKind.SEND and "message" in e.data]
    heartbeats = all(isinstance(m, AppendEntryResponse) or (isinstance(m, AppendEntryRequest) and not m.entries)
                     for m in sent)
    nodes = {node.id: node for node in frame.nodes}
    voters = set(frame.voters) or set(nodes)
    down = sorted(i for i in voters if nodes[i].crashed)
    up, need = len(voters) - len(down), len(voters) // 2 + 1
    leader = None if frame.leader is None else nodes[frame.leader]
    waiting = ""
    if leader is not None and leader.snapshot_index + len(leader.log) > leader.commit_index:
        low, high = leader.commit_index + 1, leader.snapshot_index + len(leader.log)
        waiting = (f"entry {low} waits" if low == high else f"entries {low}-{high} wait") + (
            f" uncommitted at leader {leader.id}")
    named = f"node{'s' if len(down) > 1 else ''} {', '.join(map(str, down))} down"
    if leader is not None and up >= need and not waiting and sent and heartbeats:
        return "the cluster is stable" + (f" ({named}; a majority up)" if down else "") + "; heartbeats only"
    parts = []
    if up < need:
        parts.append(f"no majority: {named}, {up} of the {len(voters)} voters up and a commit or an election "
                     f"takes {need}")
    elif down:
        parts.append(named)
    if leader is None:
        parts.append("no leader")
    if waiting:
        parts.append(waiting)
    if not sent:
        parts.append("nothing was sent")
    elif heartbeats:
        parts.append("heartbeats only")
    else:
        counts = Counter(type(m).__name__ for m in sent)
        parts.append("messages: " + ", ".join(f"{name} &times;{n}" for name, n in counts.most_common()))
    return "; ".join(parts)


KEYS: dict[str, tuple[str, str]] = {
    " ": ("play", "play / pause"), "s": ("step_button", "step"), "b": ("back_button", "step back"),
    "n": ("notable_button", "next notable"), "c": ("request_button", "client request"),
    "k": ("crash_button", "crash"), "r": ("restart_button", "restart"), "t": ("timeout_button", "time out"),
    "d": ("drop_button", "drop the message"), "h": ("heal_button", "heal"), "l": ("leader", "select the leader"),
}
"""The keyboard shortcuts (in the spirit of RaftScope's), with the mouse over the pictures: key -> (the
control pressed, what it does); the digits select a node. The node actions act on the selected node."""

OPTIONS = ("pre_vote", "check_quorum", "read_lease")
"""The `Replica` options the set-up tab turns on for a new cluster (thesis §9.6, §6.2, §6.4.1)."""
OPTION_NAMES = {"pre_vote": "PreVote", "check_quorum": "CheckQuorum", "read_lease": "lease reads"}
NARRATED = 12  # events shown in the narration
MAX_NODES = 9  # Add node stops there (the views draw at most 9 nodes)
CLIENT = 1000  # the client id of the requests sent from the app (scenarios use small ids)


def _callback(method: Callable[..., Any]) -> Callable[..., Any]:
    """Make `method` a control's callback: ignored while the app updates its own controls; any
    exception is shown in the app (never lost); then everything is redrawn."""

    @functools.wraps(method)
    def callback(self: RaftLab, *args: Any) -> None:
        if self._syncing:
            return
        try:
            method(self, *args)
        except Exception as error:
            self._report(error)
        try:
            self._refresh()
        except Exception as error:
            self._report(error)

    return callback


def _natural(inches: float) -> w.Layout:
    """An image's layout: its natural width (the renderers draw at 90 dpi), never wider than the page."""
    return w.Layout(width=f"{inches * 90:.0f}px", max_width="100%", height="auto", object_fit="contain")


def _button(description: str, tooltip: str, handler: Callable[..., Any], style: str = "") -> w.Button:
    button = w.Button(description=description, tooltip=tooltip, button_style=style,
                      layout=w.Layout(width="auto"))
    button.on_click(handler)
    return button


class RaftLab:
    """A Raft cluster to play with: ``RaftLab(n=5, seed=1)``, or ``RaftLab(sim)`` to wrap a
    `Simulation` you made. Display it in a notebook cell; the root widget is `widget`.

    Controls (attributes), by group:

    - time: `play` (Play: each tick takes `speed` steps), `speed` (IntSlider, steps per tick),
      `step_button` ("Step": one event), `back_button` ("Step back": rewind one step),
      `notable_button` ("Next notable": step until a role change or a commit, at most one election
      timeout of virtual time and `NOTABLE_LIMIT` steps; if nothing notable came, it says what holds the
      cluster: stable, or nodes down, no majority, no leader, entries uncommitted; with every node down
      it says so and does not run the clock), `time_slider` (IntSlider over 0..``sim.history_end``: moving it back
      rewinds, forward replays; acting in the past forks a new branch of the history and its max
      shrinks), `branch_picker` (Dropdown of the history's branches, `sim.branches`: when and by which
      action each forked; choosing one switches to it, `sim.switch_branch`, and the slider follows it).
    - nodes: `node_picker` (Dropdown of node ids; clicking a node in the graph selects it too, and
      clicking a message in flight selects it in `messages`, through ``ipyevents``), `crash_button`
      ("Crash"), `restart_button` ("Restart"), `timeout_button` ("Time out": force its election timer), `request_button`
      ("Client request": a `KVStore.put` with a fresh (client, seq) sent to it), `transfer_button`
      ("Transfer": the leader hands its leadership to the selected node, `sim.transfer_leadership`),
      `read_button` ("Read": a linearizable read of the key in `read_key` (Text) at the selected node,
      `sim.read`, without a log write; its answer is shown above the narration when it comes),
      `add_button` ("Add node": a new learner with an empty log, proposed to the leader, `sim.add_node`;
      it is selected), `promote_button` ("Promote": the selected learner made a voter, `sim.promote`),
      (a node still joining, its addition refused or lost: Promote asks for it as a learner again),
      `remove_button` ("Remove node": the selected node taken out of the configuration, `sim.remove_node`;
      it is shut down once that commits); each says in `notice` what it asked, or why it could not (no
      leader, not a learner or not a member, or the leader's refusal with the core's reason), then
      whether the change committed;
      `inspector` (HTML: its full state and membership, with a pre-vote, an election or a transfer in
      progress).
    - network: `latency` (FloatRangeSlider, seconds), `drop_rate` and `duplicate_rate`
      (FloatSliders, probabilities), `sides` (one ToggleButtons "A"/"B" per node),
      `partition_button` ("Apply partition": heal, then cut every link between A and B),
      `heal_button` ("Heal"), `messages` (Dropdown of the messages in flight), `drop_button`
      ("Drop message": lose the chosen one).
    - narration: `notice` (HTML: what the Transfer and Read buttons did, and the answer of the last
      read), `narration` (HTML: the last events explained, the current one highlighted; the views
      highlight it too), `narration_mode` (ToggleButtons "list" / "per node": one column per node,
      as the course tool dslogs shows logs), `narration_kinds` (a Checkbox per filter of
      `raftlab.viz.narration.CATEGORIES`: votes, appends, commits, timers, messages, faults).
    - share: `share_button` ("Share run": puts `share()`, a short text, in `share_text` (Textarea) to
      copy), `open_button` ("Open shared run": replays the text pasted in `share_text`,
      `open_shared`); ``RaftLab.from_shared(text)`` opens one in a new app.
    - set-up: `seed` (IntText), `size` (IntSlider 1-9), `options` (a Checkbox per name of `OPTIONS`:
      pre_vote, check_quorum, read_lease; read_lease needs check_quorum, so ticking it ticks that
      too), `reset_button` ("Reset": a new simulation of that size and seed, with those options and
      the network of the sliders), `scenario` (Dropdown of the bundled scenario transcripts,
      `raftlab.sim.transcript.TRANSCRIPTS`: choosing one replays it, with this app's replica class,
      and stops where it ends; then the fault recipes, `raftlab.sim.recipes.RECIPES`, as values
      ``("recipe", name)``: choosing one builds it with the seed shown, ``recipes.build(name,
      seed=...)``), `scenario_text` (HTML: what the chosen scenario is about);
      `load_transcript(path)` does the same for a transcript of your own, and
      ``RaftLab.from_transcript(path)`` opens one in a new app.
    - views: `graph_image`, `log_image`, `timeline_image` (Image, png); `status` (HTML: time, step,
      leader); `keys_help` (HTML: the keyboard shortcuts, `KEYS`, taken with the mouse over the
      pictures; `press(key)` does what a key does).
    - errors: `errors` (HTML: the last exception raised by a control, with a traceback summary),
      `dismiss_button` ("Dismiss"); `last_error` holds the exception.

    Reset keeps the arguments given here other than `n`, `seed`, `network` and the `OPTIONS` (with
    `sim` given: its timeouts, snapshot_delta and other Replica options).
    """

    def __init__(self, sim: Any = None, **simulation_arguments: Any) -> None:
        if sim is not None and simulation_arguments:
            raise TypeError("give either a Simulation or the arguments to make one, not both")
        self._counterexample = None  # a model checker's counterexample (raftlab.mc.Counterexample), if shown
        if sim is not None and not isinstance(sim, Simulation) and hasattr(sim, "simulation") and hasattr(sim, "lines"):
            self._counterexample, sim = sim, sim.simulation()[0]
        self.sim = sim if sim is not None else Simulation(**simulation_arguments)
        if self.sim.n > MAX_NODES:
            raise ValueError(f"n: the app shows at most {MAX_NODES} nodes, not {self.sim.n} (a larger cluster runs "
                             f"in a Simulation without the app)")
        self._arguments = {k: v for k, v in simulation_arguments.items()
                           if k not in ("n", "seed", "network", *OPTIONS)}
        if sim is not None:
            self._arguments = {"heartbeat_timeout": sim.heartbeat_timeout, "election_timeout": sim.election_timeout,
                               "snapshot_delta": sim.snapshot_delta, "state_machine": sim.state_machine,
                               "noop_transition": sim.noop, "replica_class": sim.replica_class,
                               **{k: v for k, v in sim.options.items() if k not in OPTIONS}}
        self._syncing = False
        self._said: tuple[float, str] | None = None  # what the last Transfer or Read press did: (time, html)
        self._read: tuple[int, ReadRequest] | None = None  # the last read asked here: (number, handle)
        self._change: tuple[str, Submission] | None = None  # the last membership change asked here: (what, handle)
        self.last_error: BaseException | None = None
        self.graph_view = GraphView(figsize=(5.5, 5.0), dpi=90)
        self.log_view = LogView(figsize=(8, 3.2), dpi=90)
        self.timeline_view = TimelineView(figsize=(8, 3.0), dpi=90)

        # time
        self.play = w.Play(value=0, min=0, max=10**9, step=1, interval=400, description="Play")
        self.play.observe(self._on_play, names="value")
        self.speed = w.IntSlider(value=1, min=1, max=50, description="steps/tick", continuous_update=False)
        self.step_button = _button("Step", "take one step: deliver a message or fire a timer", self._on_step)
        self.back_button = _button("Step back", "rewind one step", self._on_back)
        self.notable_button = _button("Next notable", "step until a role change or a commit", self._on_notable)
        self.time_slider = w.IntSlider(value=0, min=0, max=0, description="step", continuous_update=False,
                                       layout=w.Layout(width="60%"))
        self.time_slider.observe(self._on_time, names="value")
        self.branch_picker = w.Dropdown(options=[], description="branch", layout=w.Layout(width="38%"))
        self.branch_picker.observe(self._on_branch, names="value")

        # nodes
        self.node_picker = w.Dropdown(description="node", layout=w.Layout(width="220px"))
        self.node_picker.observe(self._on_select, names="value")
        self.crash_button = _button("Crash", "crash the selected node", self._on_crash, "danger")
        self.restart_button = _button("Restart", "restart the selected node from its storage", self._on_restart)
        self.timeout_button = _button("Time out", "fire the selected node's election timer now", self._on_timeout)
        self.request_button = _button("Client request", "send a KV put to the selected node", self._on_request)
        self.transfer_button = _button("Transfer", "the leader hands its leadership to the selected node",
                                       self._on_transfer)
        self.read_button = _button("Read", "a linearizable read of the key at the selected node (no log write)",
                                   self._on_read)
        self.add_button = _button("Add node", "start a new node as a learner and ask the leader to add it",
                                  self._on_add)
        self.promote_button = _button("Promote", "ask the leader to make the selected learner a voter",
                                      self._on_promote)
        self.remove_button = _button("Remove node", "ask the leader to take the selected node out of the cluster",
                                     self._on_remove, "warning")
        self.read_key = w.Text(value="k1", description="key", layout=w.Layout(width="140px"),
                               style={"description_width": "30px"})
        self.inspector = w.HTML()

        # network
        self.latency = w.FloatRangeSlider(min=0.0, max=200.0, step=1.0, description="latency (ms)",
                                          readout_format=".0f", continuous_update=False)
        self.drop_rate = w.FloatSlider(min=0.0, max=1.0, step=0.01, description="drop", continuous_update=False)
        self.duplicate_rate = w.FloatSlider(min=0.0, max=1.0, step=0.01, description="duplicate",
                                            continuous_update=False)
        for name, slider in (("latency", self.latency), ("drop", self.drop_rate), ("duplicate", self.duplicate_rate)):
            slider.style.description_width = "90px"
            slider.observe(functools.partial(self._on_network, name), names="value")
        self.sides: list[w.ToggleButtons] = []
        self._sides_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.partition_button = _button("Apply partition", "cut every link between side A and side B",
                                        self._on_partition, "warning")
        self.heal_button = _button("Heal", "restore every link", self._on_heal)
        self.messages = w.Dropdown(description="in flight", layout=w.Layout(width="600px"))
        self.drop_button = _button("Drop message", "lose the chosen message", self._on_drop)

        # set-up
        self.seed = w.IntText(value=self.sim.seed, description="seed")
        self.size = w.IntSlider(value=self.sim.n, min=1, max=9, description="nodes")
        self.options = {name: w.Checkbox(value=bool(self.sim.options.get(name, False)), description=name,
                                         tooltip=f"{OPTION_NAMES[name]} for the next cluster (applied on Reset)",
                                         indent=False, layout=w.Layout(width="auto"))
                        for name in OPTIONS}
        self.options["read_lease"].observe(self._on_lease, names="value")
        self.options["check_quorum"].observe(self._on_check_quorum, names="value")
        self.reset_button = _button("Reset", "a new simulation of this size, seed and options", self._on_reset)
        self.scenario = w.Dropdown(options=[("(choose a scenario)", None),
                                            *((f"{name}: {Transcript.load(path).title}"[:70], name)
                                              for name, path in TRANSCRIPTS.items()),
                                            *((f"recipe {name}: {recipe.title}"[:90], ("recipe", name))
                                              for name, recipe in recipes.RECIPES.items())],
                                   value=None, description="scenario", layout=w.Layout(width="560px"))
        self.scenario.observe(self._on_scenario, names="value")
        self.scenario_text = w.HTML(layout=w.Layout(max_width="720px"))
        self.share_button = _button("Share run", "a short text that replays this run exactly: copy it",
                                    self._on_share)
        self.share_text = w.Textarea(placeholder="press Share run, or paste a shared run here and press Open",
                                     layout=w.Layout(width="560px", height="4em"))
        self.open_button = _button("Open shared run", "replay the run pasted above", self._on_open_shared)
        self.compare_button = _button("Other side", "the chosen recipe again, told the other way (its compare "
                                      "settings: the mechanism switched on, or off)", self._on_compare)
        self.compare_button.layout.display = "none"
        self._recipe: tuple[str, bool] | None = None  # the recipe shown, and whether told the other way

        # views, narration, errors
        self.graph_image = w.Image(format="png", layout=_natural(5.5))
        self.log_image = w.Image(format="png", layout=_natural(8))
        self.timeline_image = w.Image(format="png", layout=_natural(8))
        self.narration = w.HTML(layout=w.Layout(width="100%"))
        self.narration_mode = w.ToggleButtons(options=["list", "per node"], value="list",
                                              style={"button_width": "84px"})
        self.narration_kinds = {name: w.Checkbox(value=True, description=name, indent=False,
                                                 layout=w.Layout(width="auto"))
                                for name in CATEGORIES}
        for control in (self.narration_mode, *self.narration_kinds.values()):
            control.observe(self._on_narration, names="value")
        self.notice = w.HTML(layout=w.Layout(width="100%"))
        self.status = w.HTML()
        self.keys_help = w.HTML("<span style='font-size:11px;color:#555'>keys, with the mouse over the pictures: "
                                + " · ".join(f"<b>{'Space' if k == ' ' else k.upper()}</b> {what}"
                                             for k, (_, what) in KEYS.items())
                                + " · <b>0-9</b> select a node · click a node or a message to select it</span>")
        self.errors = w.HTML()
        self.dismiss_button = _button("Dismiss", "hide the error", self._on_dismiss)
        self._error_box = w.VBox([self.errors, self.dismiss_button], layout=w.Layout(display="none"))
        self._attach_click()

        network = w.VBox([self.latency, self.drop_rate, self.duplicate_rate, w.HTML("<b>partition</b>"),
                          self._sides_box, w.HBox([self.partition_button, self.heal_button]),
                          w.HBox([self.messages, self.drop_button])])
        setup = w.VBox([self.seed, self.size, w.HBox(list(self.options.values())), self.reset_button,
                        self.scenario, self.scenario_text, self.compare_button,
                        w.HTML("<b>share</b>"), w.HBox([self.share_button, self.open_button]), self.share_text])
        tabs = w.Tab(children=[network, setup], titles=["Network", "Set-up"])
        nodes = w.VBox([self.node_picker, w.HBox([self.crash_button, self.restart_button]),
                        w.HBox([self.timeout_button, self.request_button]),
                        w.HBox([self.transfer_button, self.read_button, self.read_key]),
                        w.HBox([self.add_button, self.promote_button, self.remove_button]), self.inspector],
                       layout=w.Layout(min_width="300px"))
        self.widget = w.VBox([
            self.status, self.keys_help, self._error_box,
            w.HBox([self.play, self.speed, self.step_button, self.back_button, self.notable_button]),
            w.HBox([self.time_slider, self.branch_picker]),
            w.HBox([self.graph_image, nodes]),
            self.log_image, self.timeline_image,
            w.HBox([w.HTML("<b>what happened</b>&nbsp;"), self.narration_mode, *self.narration_kinds.values()]),
            self.notice, self.narration, tabs,
        ])
        if self._counterexample is not None:
            self._add_counterexample_view(self._counterexample)
        self._rebuild_nodes()
        self._refresh()

    def _add_counterexample_view(self, cx: Any) -> None:
        """A model checker's counterexample: a slider over its steps (the cluster after each, rebuilt
        from the start) and the steps explained, the next one and the property it violates named."""
        last = len(cx.actions) - 1
        self.counterexample_slider = w.IntSlider(value=last, min=0, max=last, description="step",
                                                 continuous_update=False)
        self.counterexample_text = w.HTML()
        self.counterexample_slider.observe(self._on_counterexample_step, names="value")
        self.widget.children = (self.widget.children[0], w.HTML(f"<b>counterexample</b>: {html.escape(repr(cx))}"),
                                self.counterexample_slider, self.counterexample_text, *self.widget.children[1:])
        self._show_counterexample_step(last)

    def _show_counterexample_step(self, k: int) -> None:
        cx = self._counterexample
        assert cx is not None
        lines = cx.lines()
        done = "".join(f"<li>{html.escape(line.strip()[line.strip().index('.') + 1:].strip())}</li>"
                       for line in lines[:k])
        nxt = html.escape(cx.model.describe(cx.actions[k]))
        verdict = (f"step {len(cx.actions)} violates <b style='color:#a00'>{html.escape(cx.violation.property)}</b>: "
                   f"{html.escape(cx.violation.detail)}")
        self.counterexample_text.value = (f'<ol style="font-family:monospace;font-size:12px;margin:0">{done}</ol>'
                                          f"<div>next, step {k + 1}: {nxt}</div><div>{verdict}</div>")

    @_callback
    def _on_counterexample_step(self, change: dict) -> None:
        k = change["new"]
        self.sim = self._counterexample.simulation(k)[0]  # type: ignore[union-attr]
        self._show_opened()
        self._show_counterexample_step(k)
        self._refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ----- drawing -----------------------------------------------------------------------------
    @contextmanager
    def _quiet(self) -> Any:
        """Update controls without their callbacks acting on the simulation."""
        before, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = before

    def _rebuild_nodes(self) -> None:
        """Make the controls that have one entry per node (after a reset)."""
        ids = self.sim.ids
        with self._quiet():
            selected = self.node_picker.value
            self.node_picker.options = [(f"node {i}", i) for i in ids]
            self.node_picker.value = selected if selected in ids else ids[0]
            self.sides = [w.ToggleButtons(options=["A", "B"], value="A" if i < len(ids) // 2 else "B",
                                          description=f"node {i}", layout=w.Layout(width="auto"),
                                          style={"button_width": "32px", "description_width": "50px"})
                          for i in ids]
            self._sides_box.children = self.sides

    def _refresh(self) -> None:
        """Redraw everything from the simulation's frame and trace."""
        if [value for _, value in self.node_picker.options] != list(self.sim.ids):
            self._rebuild_nodes()  # nodes added, or a rewind to before they were
        sim, frame = self.sim, self.sim.frame()
        events = sim.trace.events
        current = events[-1] if events else None
        node = self.node_picker.value
        self.graph_view.update(frame, selected=node, highlight=current)
        self.log_view.update(frame, selected=node, highlight=current)
        self.timeline_view.update(frame, events, window=2.0, highlight=current)
        self.graph_image.value = self.graph_view.png()
        self.log_image.value = self.log_view.png()
        self.timeline_image.value = self.timeline_view.png()
        with self._quiet():
            self.time_slider.max = max(sim.history_end, sim.steps)
            self.time_slider.value = sim.steps
            self.branch_picker.options = [(str(b), b.number) for b in sim.branches]
            self.branch_picker.value = sim.branch
            low, high = (1000 * s for s in sim.network.latency)
            self.latency.max = max(self.latency.max, high)
            self.latency.value = (low, high)
            self.drop_rate.value, self.duplicate_rate.value = sim.network.drop, sim.network.duplicate
            chosen = self.messages.value
            self.messages.options = [
                (f"#{f.id} {f.source}→{f.destination}: {describe(f.message)}{' (copy)' if f.copy else ''}, "
                 f"arrives {f.arrives / 1e6:.4f}s", f.id) for f in frame.in_flight]
            ids = [f.id for f in frame.in_flight]
            self.messages.value = chosen if chosen in ids else (ids[0] if ids else None)
        replay = (" · <i>replaying a recorded history: acting now forks a new branch (this one is kept)</i>"
                  if sim.steps < sim.history_end else "")
        on = [OPTION_NAMES[k] for k in OPTIONS if frame.options.get(k)]
        self.status.value = (f"<b>t = {frame.time:.4f} s</b> · step {frame.step} of {sim.history_end} · "
                             f"leader: {'none' if frame.leader is None else f'node {frame.leader}'} · "
                             f"seed {frame.seed}{' · ' + ', '.join(on) if on else ''}{replay}")
        self.inspector.value = self._inspect(frame, node)
        self.notice.value = self._notice()
        self.narration.value = self._narration(events, current)

    def _narration(self, events: list[TraceEvent], current: TraceEvent | None) -> str:
        """The last `NARRATED` events of the kinds ticked, as a list or one column per node."""
        kinds = [name for name, box in self.narration_kinds.items() if box.value]
        if len(kinds) == len(CATEGORIES):
            chosen, first = events[-NARRATED:], max(len(events) - NARRATED, 0) + 1
        else:  # (filtered: looked for from the end, so that a long run costs no more)
            chosen = []
            for event in reversed(events):
                if category(event) in kinds:
                    chosen.append(event)
                    if len(chosen) == NARRATED:
                        break
            chosen.reverse()
            first = 1
        if not chosen:
            return "<i>nothing has happened yet</i>" if not events else "<i>no event of the kinds ticked yet</i>"
        if self.narration_mode.value == "per node":
            return narration_columns(chosen, self.sim.ids, highlight=current)
        return narration_list(chosen, highlight=current, first=first)

    def _inspect(self, frame: Frame, node: int) -> str:
        """The selected node's full state, as an HTML table."""
        s = frame.nodes[node]
        rows: list[tuple[str, Any]] = [("role", "crashed" if s.role is None else s.role.value),
                ("term", s.term), ("voted for", s.voted_for), ("knows leader", s.leader),
                ("commit index", s.commit_index), ("last applied", s.last_applied),
                ("last log index", s.snapshot_index + len(s.log)), ("snapshot index", s.snapshot_index),
                ("next timer", "none" if s.deadline == float("inf") else f"{s.deadline:.4f} s"),
                ("membership", _MEMBERSHIP_TEXT.get(s.membership, s.membership))]
        if frame.voters != tuple(ns.id for ns in frame.nodes) or frame.learners or not frame.config_committed:
            rows.append(("configuration", f"voters {list(frame.voters)}, learners {list(frame.learners)}"
                                          f"{'' if frame.config_committed else ' (not committed yet)'}"))
        need = (len(frame.voters) or len(frame.nodes)) // 2 + 1
        if s.pre_votes is not None and not s.crashed:
            rows.append(("pre-vote", f"asking for term {s.term + 1}: yes from {list(s.pre_votes)}, "
                                     f"{len(s.pre_votes)} of the {need} it needs"))
        if s.votes:
            rows.append(("votes", f"{list(s.votes)}, {len(s.votes)} of the {need} it needs"))
        if s.transfer_to is not None:
            rows.append(("transfer", f"to node {s.transfer_to} (aborted at {s.transfer_deadline:.4f} s "
                                     f"unless it wins; no new writes meanwhile)"))
        if s.reads:
            rows.append(("reads waiting", s.reads))
        if s.clock_rate != 1:
            rows.append(("clock rate", f"{s.clock_rate:g}x"))
        machine = self.sim.replicas[node].machine
        if machine is not None and hasattr(machine, "data"):
            rows.append(("state machine", dict(machine.data)))
        cells = "".join(f"<tr><td>{k}</td><td><b>{html.escape(str(v))}</b></td></tr>" for k, v in rows)
        text = f"<b>node {node}</b><table>{cells}</table>"
        if s.next_index:
            peers = "".join(f"<tr><td>{p}</td><td>{s.next_index[p]}</td><td>{s.match_index.get(p)}</td>"
                            f"<td>{s.flows.get(p, '')}</td></tr>" for p in sorted(s.next_index))
            text += f"<table><tr><th>peer</th><th>next</th><th>match</th><th>flow</th></tr>{peers}</table>"
        return text

    def _report(self, error: BaseException) -> None:
        """Show `error` in the app, stop the animation."""
        self.last_error = error
        self.play.playing = False
        frames = traceback.format_exception(type(error), error, error.__traceback__)
        summary = "".join(frames[-4:])
        self.errors.value = (f'<div style="color:#a00"><b>{html.escape(type(error).__name__)}</b>: '
                             f'{html.escape(str(error))}</div><details><summary>traceback</summary>'
                             f'<pre style="font-size:11px">{html.escape(summary)}</pre></details>')
        self._error_box.layout.display = "flex"

    # ----- time ----------------------------------------------------------------------------------
    def _steps(self, count: int) -> None:
        for _ in range(count):
            if self.sim.step() is None:
                break

    @_callback
    def _on_play(self, change: dict) -> None:
        self._steps(self.speed.value)

    @_callback
    def _on_step(self, button: w.Button) -> None:
        self._steps(1)

    @_callback
    def _on_back(self, button: w.Button) -> None:
        if self.sim.steps > 0:
            self.sim.rewind(self.sim.steps - 1)

    @_callback
    def _on_notable(self, button: w.Button) -> None:
        sim = self.sim
        if self._said is not None and self._said[1].startswith(_NOTABLE_SAID):
            self._said = None  # the last press's "nothing notable": stale once this one finds something
        if all(node.crashed for node in sim.frame().nodes if node.membership != "removed"):
            self._say(f"{_NOTABLE_SAID}: every node is down, so nothing can happen (no timer runs, no message "
                      f"is delivered): restart one (Restart, or R)")
            return
        trace, start, first = sim.trace, sim.now, len(sim.trace)
        patience = sim.election_timeout[1]  # a stable cluster: say so, do not run on
        seen, steps = [first], sim.steps

        def found(s: Simulation) -> bool:
            events, seen[0] = trace.events[seen[0]:], len(trace)
            return any(notable(e) for e in events) or s.steps - steps >= NOTABLE_LIMIT

        sim.run_until(found, patience)  # stops at a notable event, or at start + patience exactly
        if any(notable(e) for e in trace.events[first:]):
            return
        waited = sim.now - start
        if sim.steps - steps >= NOTABLE_LIMIT:
            self._say(f"{_NOTABLE_SAID}: nothing notable in {NOTABLE_LIMIT} steps ({waited:.3f} s); press again "
                      f"to go on")
            return
        self._say(f"{_NOTABLE_SAID}: nothing notable for {waited:.2f} s, an election timeout (no change of role, "
                  f"no commit): {_quiet(sim.frame(), trace.events[first:])}")

    @_callback
    def _on_time(self, change: dict) -> None:
        target = change["new"]
        if target < self.sim.steps:
            self.sim.rewind(target)
        while self.sim.steps < target and self.sim.step() is not None:
            pass

    # ----- nodes ---------------------------------------------------------------------------------
    @_callback
    def _on_narration(self, change: dict) -> None:
        pass  # (the callback redraws)

    @_callback
    def _on_branch(self, change: dict) -> None:
        if change["new"] is not None and change["new"] != self.sim.branch:
            self.sim.switch_branch(change["new"])
            branch = self.sim.branches[self.sim.branch]
            self._say(f"<b>{html.escape(str(branch))}</b>: back at step {self.sim.steps}, where it parts from the "
                      f"branch shown before; step on (or move the slider) to replay it")

    @_callback
    def _on_select(self, change: dict) -> None:
        pass  # the redraw shows the selection

    def _attach_click(self) -> None:
        """Clicks on the graph and keys over the pictures, through ipyevents (a dependency of
        ``raftlab[jupyter]``; without it, the buttons still work)."""
        try:
            from ipyevents import Event
        except ImportError:
            return
        self._click = Event(source=self.graph_image, watched_events=["click"])
        self._click.on_dom_event(self._on_graph_click)
        self._keys = [Event(source=image, watched_events=["keydown"], ignore_modifier_key_events=True)
                      for image in (self.graph_image, self.log_image, self.timeline_image)]
        for keys in self._keys:
            keys.on_dom_event(self._on_key)

    @_callback
    def _on_graph_click(self, event: dict) -> None:
        width, height = event.get("boundingRectWidth"), event.get("boundingRectHeight")
        if not width or not height:
            return
        x, y = event["relativeX"] / width, event["relativeY"] / height
        message = self.graph_view.message_at(x, y)
        if message is not None and message in [value for _, value in self.messages.options]:
            with self._quiet():
                self.messages.value = message
            self._say(f"message #{message} selected: press Drop message (or D) to lose it")
            return
        node = self.graph_view.node_at(x, y)
        if node is not None:
            with self._quiet():
                self.node_picker.value = node

    def _on_key(self, event: dict) -> None:
        if event.get("ctrlKey") or event.get("altKey") or event.get("metaKey"):
            return
        key = event.get("key", "")
        self.press(key.lower() if len(key) == 1 else key)

    def press(self, key: str) -> str | None:
        """Do what `key` does (`KEYS`; a digit selects that node); returns what it did, or None for a
        key that does nothing."""
        if key.isdigit() and len(key) == 1:
            if int(key) not in self.sim.ids:
                return None
            self.node_picker.value = int(key)  # (its observer redraws)
            return f"select node {key}"
        if key not in KEYS:
            return None
        control, what = KEYS[key]
        if control == "play":
            self.play.playing = not self.play.playing
        elif control == "leader":
            leader = self.sim.leader()
            if leader is None:
                return None
            self.node_picker.value = leader
        else:
            getattr(self, control).click()
        return what

    @_callback
    def _on_crash(self, button: w.Button) -> None:
        self.sim.crash(self.node_picker.value)

    @_callback
    def _on_restart(self, button: w.Button) -> None:
        self.sim.restart(self.node_picker.value)

    @_callback
    def _on_timeout(self, button: w.Button) -> None:
        self.sim.force_timeout(self.node_picker.value)

    @_callback
    def _on_request(self, button: w.Button) -> None:
        seq = 1 + max((i[1] for i in self.sim.submissions if isinstance(i, tuple) and i[0] == CLIENT), default=0)
        transition: KVCommand | Add
        if isinstance(self.sim.noop, KVCommand):
            transition = KVStore.put(CLIENT, seq, f"k{seq}", str(seq))
        else:  # a Counter cluster
            transition = Add((CLIENT, seq), 1)
        self.sim.submit(transition, to=self.node_picker.value)

    def _say(self, text: str) -> None:
        """Show `text` (HTML) above the narration, stamped with the time (until the next one, or a reset)."""
        self._said = (self.sim.now, text)

    @_callback
    def _on_transfer(self, button: w.Button) -> None:
        node, leader = self.node_picker.value, self.sim.leader()
        if leader is None:
            self._say("<b>Transfer</b>: there is no leader to hand the leadership over: wait for an election "
                      "(Step, Next notable or Play), then press Transfer again.")
            return
        if node == leader:
            self._say(f"<b>Transfer</b>: node {node} leads already: select the node that should lead instead, "
                      f"then press Transfer.")
            return
        self.sim.transfer_leadership(node)
        down = (f" Node {node} is down: unless it restarts and wins within an election timeout, the transfer is "
                f"aborted (LT-ABORT)." if self.sim.replicas[node].crashed else "")
        self._say(f"<b>Transfer</b>: leader {leader} hands its leadership to node {node}: it takes no new writes, "
                  f"brings node {node} up to date, then sends it TimeoutNow; node {node} stands at once. Step to "
                  f"watch it.{down}")

    @_callback
    def _on_read(self, button: w.Button) -> None:
        node, key = self.node_picker.value, self.read_key.value.strip() or "k1"
        if not callable(getattr(self.sim.state_machine, "read", None)):
            self._say(f"<b>Read</b>: this cluster's state machine "
                      f"({html.escape(getattr(self.sim.state_machine, '__name__', 'its own'))}) has no "
                      f"read(key): reads need one, such as KVStore's.")
            return
        handle = self.sim.read(key, to=node)
        self._read = (self.sim._read_seq, handle)
        self._said = None

    def _propose(self, what: str, change: Callable[[], Submission]) -> None:
        """Make a membership change (`change` calls the simulation and returns the proposal) and say what
        it asked, or why the leader refused it at once (the core's reason, from its CONFIG_REFUSED event)."""
        seen = len(self.sim.trace)
        handle = change()
        self._change = (what, handle)
        why = _refusal(self.sim.trace.events[seen:])
        if handle.state is TransitionState.ABANDONED_REFUSED or why is not None:
            self._say(f"<b>{what}</b>: leader {handle.node} refused the change: \u201c{html.escape(why or 'refused')}"
                      f"\u201d (MC-ONE). "
                      f"Step or Play a little, then press again.")
        else:
            self._say(f"<b>{what}</b>: leader {handle.node} appended the change to its log; it takes effect at once "
                      f"on each server that has it (MC-LATEST) and is done once committed. Step to watch it.")

    def _no_leader(self, what: str) -> bool:
        """Say so if there is no leader to take a membership change (True then)."""
        if self.sim.leader() is not None:
            return False
        self._say(f"<b>{what}</b>: there is no leader to take the change: only the leader changes the configuration. "
                  f"Wait for an election (Step, Next notable or Play), then press again.")
        return True

    @_callback
    def _on_add(self, button: w.Button) -> None:
        if self.sim.n >= MAX_NODES:
            self._say(f"<b>Add node</b>: the app shows at most {MAX_NODES} nodes; remove one or Reset.")
            return
        if self._no_leader("Add node"):
            return
        node = len(self.sim.ids)
        self._propose(f"Add node {node}", lambda: (self.sim.add_node(), self.sim.changes[-1])[1])
        self._rebuild_nodes()
        with self._quiet():
            self.node_picker.value = node
        refused = self._change is not None and self._change[1].state is TransitionState.ABANDONED_REFUSED
        note = (f" Node {node} is running but stays <i>joining</i>: select it and press Promote to ask for it again "
                f"(not Add node, which starts another node)." if refused else
                f" Node {node} starts as a learner with an empty log: it gets the entries but never votes nor stands; "
                f"press Promote once it has caught up.")
        self._said = (self.sim.now, (self._said[1] if self._said else "").replace(
            " Step or Play a little, then press again.", "") + note)

    @_callback
    def _on_promote(self, button: w.Button) -> None:
        node = self.node_picker.value
        what = f"Promote node {node}"
        if self._no_leader(what):
            return
        membership = self.sim.membership(node)
        if membership == "joining":  # its addition was refused or lost: ask for it again
            config = self.sim.configuration()
            again = Configuration(config.voters, config.learners | {node})
            self._propose(f"Add node {node} again", functools.partial(self.sim.submit, again))
            self._said = (self.sim.now, (self._said[1] if self._said else "") + f" (Node {node} was still joining: "
                          f"this asked for it to be added as a learner first; press Promote again once it is one.)")
            return
        if membership != "learner":
            self._say(f"<b>{what}</b>: node {node} is not a learner of the cluster (it is "
                      f"{_MEMBERSHIP_TEXT.get(membership, membership)}): only a learner can be promoted.")
            return
        self._propose(what, functools.partial(self.sim.promote, node))

    @_callback
    def _on_remove(self, button: w.Button) -> None:
        node = self.node_picker.value
        what = f"Remove node {node}"
        if self._no_leader(what):
            return
        membership = self.sim.membership(node)
        if membership not in ("voter", "learner"):
            self._say(f"<b>{what}</b>: node {node} is not a member of the cluster (it is "
                      f"{_MEMBERSHIP_TEXT.get(membership, membership)}): there is nothing to remove.")
            return
        self._propose(what, functools.partial(self.sim.remove_node, node))

    def _notice(self) -> str:
        """What the last Transfer, Read or membership button did, and the state of the last read and
        of the last membership change (HTML)."""
        now, parts = self.sim.now, []
        if self._said is not None and self._said[0] <= now:
            parts.append(f"<div>[{self._said[0]:8.4f}s] {self._said[1]}</div>")
        if self._read is not None:
            number, asked = self._read
            handle = self.sim.reads.get(asked.id)  # (after a rewind, the simulation's own copy)
            if handle is not None and handle.asked <= now:
                parts.append(f"<div>{_read_text(number, handle)}</div>")
        if self._change is not None:
            what, change = self._change
            made = self.sim.submissions.get(change.id, change)  # (after a rewind, the simulation's own copy)
            state = made.state
            if self._said is not None and self._said[0] <= now:
                if made.applied_on:
                    parts.append(f"<div><b>{what}</b>: committed (applied on nodes {sorted(made.applied_on)}).</div>")
                elif state is not None and state.final and state is not TransitionState.ABANDONED_REFUSED:
                    parts.append(f"<div><b>{what}</b>: not made ({state.value}).</div>")
        return (f'<div style="font-family:monospace;font-size:12px;background:#eef6ff;padding:2px 6px">'
                f'{"".join(parts)}</div>') if parts else ""

    # ----- network -------------------------------------------------------------------------------
    @_callback
    def _on_network(self, name: str, change: dict) -> None:
        value = change["new"]
        setattr(self.sim.network, name, tuple(ms / 1000 for ms in value) if name == "latency" else value)

    @_callback
    def _on_partition(self, button: w.Button) -> None:
        side = {i: toggle.value for i, toggle in zip(self.sim.ids, self.sides, strict=True)}
        a, b = [i for i in side if side[i] == "A"], [i for i in side if side[i] == "B"]
        if not a or not b:
            raise ValueError("a partition needs at least one node on each side, A and B")
        if self.sim.frame().cut:
            self.sim.heal()
        self.sim.partition(a, b)

    @_callback
    def _on_heal(self, button: w.Button) -> None:
        self.sim.heal()

    @_callback
    def _on_drop(self, button: w.Button) -> None:
        if self.messages.value is None:
            raise ValueError("no message is in flight to drop")
        self.sim.drop_message(self.messages.value)

    # ----- set-up and errors ---------------------------------------------------------------------
    def _new_simulation(self) -> None:
        """A new simulation of the chosen size and seed, on the network of the sliders."""
        network = NetworkModel(latency=tuple(ms / 1000 for ms in self.latency.value), drop=self.drop_rate.value,
                               duplicate=self.duplicate_rate.value)
        options: dict[str, Any] = {name: True for name, box in self.options.items() if box.value}
        self.sim = Simulation(n=self.size.value, seed=self.seed.value, network=network, **self._arguments, **options)
        self.graph_view.painter.forget_layout()
        self._rebuild_nodes()

    def _on_lease(self, change: dict) -> None:
        if change["new"]:  # RI-LEASE needs CheckQuorum
            self.options["check_quorum"].value = True

    def _on_check_quorum(self, change: dict) -> None:
        if not change["new"]:
            self.options["read_lease"].value = False

    @_callback
    def _on_reset(self, button: w.Button) -> None:
        self._new_simulation()
        with self._quiet():
            self.scenario.value = None
        self.scenario_text.value = ""
        self._said = self._read = self._change = None
        self._show_recipe(None)

    @_callback
    def _on_scenario(self, change: dict) -> None:
        chosen = change["new"]
        if isinstance(chosen, tuple) and chosen[0] == "recipe":
            self._open_recipe(chosen[1])
        elif chosen is not None:
            self._open_transcript(chosen)
            self.scenario_text.value = f"<i>{html.escape(Transcript.load(TRANSCRIPTS[chosen]).title)}</i>"

    @_callback
    def _on_compare(self, button: w.Button) -> None:
        if self._recipe is not None:
            name, compared = self._recipe
            recipe = recipes.RECIPES[name]
            self._open_recipe(name, self.sim.seed, **({} if compared else dict(recipe.compare)))
            self._show_recipe((name, not compared))

    def load_recipe(self, name: str, seed: int | None = None, **options: Any) -> Simulation:
        """Build the fault recipe `name` (`raftlab.sim.recipes.RECIPES`) with `seed` (default: the seed
        shown) and `options` (those of `recipes.build`, such as ``pre_vote=True``), with this app's replica
        class, and show where its setup ends. Returns the new simulation."""
        self._open_recipe(name, seed, **options)
        self._refresh()
        return self.sim

    def _open_recipe(self, name: str, seed: int | None = None, **options: Any) -> None:
        recipe = recipes.RECIPES[name]
        replica_class = self._arguments.get("replica_class", Replica)
        if replica_class is not Replica:
            options.setdefault("replica_class", replica_class)
        self.sim = recipes.build(name, seed=self.seed.value if seed is None else seed, **options)
        self._show_opened()
        self._show_recipe((name, bool(options.keys() & recipe.compare.keys())))

    def _show_recipe(self, shown: tuple[str, bool] | None) -> None:
        """Say what the recipe shown is about, and offer its other side (None: no recipe is shown)."""
        self._recipe = shown
        self.compare_button.layout.display = "none" if shown is None else "flex"
        if shown is None:
            return
        name, compared = shown
        recipe = recipes.RECIPES[name]
        told = (f"with {html.escape(_compare(recipe.compare))}: the other side of the story" if compared
                else "as the recipe tells it")
        other = "as the recipe tells it" if compared else f"with {html.escape(_compare(recipe.compare))}"
        self.scenario_text.value = (f"<b>{html.escape(recipe.title)}</b> (seed {self.sim.seed}, {told})<br>"
                                    f"{html.escape(recipe.explain)}<br><i>Other side: the same recipe {other}.</i>")

    def load_transcript(self, source: str | Path) -> Simulation:
        """Replay a scenario transcript (a path, a bundled name or a transcript's text; see
        `raftlab.sim.transcript`) with this app's replica class, and show where it ends: its own
        cluster size, seed and network. Scrub back to watch it happen. Returns the new simulation."""
        self._open_transcript(source)
        self._refresh()
        return self.sim

    @classmethod
    def from_transcript(cls, source: str | Path, **options: Any) -> RaftLab:
        """A new app on the simulation a transcript leaves (`options`: those of `run_transcript`, such
        as ``replica_class=MyReplica``)."""
        return cls(load_scenario(source, **options))

    def _open_transcript(self, source: str | Path) -> None:
        self.sim = load_scenario(source, replica_class=self._arguments.get("replica_class", Replica))
        self._show_opened()
        self._show_recipe(None)

    def _show_opened(self) -> None:
        """Show a simulation made elsewhere (a transcript's, a recipe's): its size, seed, options, network."""
        with self._quiet():
            self.seed.value, self.size.value = self.sim.seed, self.sim.n
            for name, box in self.options.items():
                box.value = bool(self.sim.options.get(name, False))
            self.latency.value = tuple(s * 1000 for s in self.sim.network.latency)
            self.drop_rate.value, self.duplicate_rate.value = self.sim.network.drop, self.sim.network.duplicate
        self._said = self._read = self._change = None
        self.graph_view.painter.forget_layout()
        self._rebuild_nodes()

    def share(self) -> str:
        """This run as a short text (`raftlab.sim.share.share`): its settings and interventions, the
        branch shown and the step; `from_shared` replays it exactly."""
        return share(self.sim)

    @classmethod
    def from_shared(cls, text: str, **options: Any) -> RaftLab:
        """A new app showing the run `text` (from `share`) describes, at the step it was shared at;
        `options` are those of `raftlab.sim.share.from_shared` (``replica_class=``)."""
        return cls(from_shared(text, **options))

    def open_shared(self, text: str, **options: Any) -> Simulation:
        """Show the run `text` describes here (as the Open shared run button does)."""
        self._open_shared(text, **options)
        self._refresh()
        return self.sim

    def _open_shared(self, text: str, **options: Any) -> None:
        self.sim = from_shared(text, **options)
        self._show_opened()

    @_callback
    def _on_share(self, button: w.Button) -> None:
        self.share_text.value = self.share()
        self._say(f"<b>Share run</b>: the text below replays this run (step {self.sim.steps} of "
                  f"{self.sim.history_end}, seed {self.sim.seed}) exactly; copy it and send it")

    @_callback
    def _on_open_shared(self, button: w.Button) -> None:
        text = self.share_text.value
        # The class the text names, unless it is a student's (outside raftlab, never imported): then
        # this app's own, which from_shared checks is the one named.
        mine = self._arguments.get("replica_class", self.sim.replica_class)
        self._open_shared(text, **({"replica_class": mine} if needs_replica_class(text) else {}))
        self._say(f"<b>Open shared run</b>: replayed to step {self.sim.steps} (of {self.sim.history_end}), "
                  f"exactly as shared")

    @_callback
    def _on_dismiss(self, button: w.Button) -> None:
        self.errors.value = ""
        self._error_box.layout.display = "none"


_MEMBERSHIP_TEXT = {"voter": "a voter", "learner": "a learner (it gets the log but neither votes nor stands)",
                    "joining": "joining (added, but the leader's configuration does not have it yet)",
                    "removed": "removed (out of the configuration, shut down)"}


def _refusal(events: Any) -> str | None:
    """The core's reason for the first configuration change refused among `events`, if any."""
    for event in events:
        if event.kind == EventKind.CONFIG_REFUSED:
            return str(event.data.get("why"))
    return None


def _read_text(number: int, read: ReadRequest) -> str:
    """The state of a read asked from the app, in a sentence (HTML)."""
    what = f"<b>Read</b> #{number} of {html.escape(repr(read.key))} at node {read.node}"
    if read.state is ReadState.READY:
        value = "has no value" if read.value is None else f"= {html.escape(repr(read.value))}"
        return (f"{what}: {html.escape(repr(read.key))} {value} (answered at {read.answered:.4f} s; "
                f"linearizable, and no log write).")
    if read.state is ReadState.ABANDONED:
        return (f"{what}: abandoned at {read.answered:.4f} s: no leader confirmed it (the node knows no leader, "
                f"or the leader changed); read again, at the leader or once there is one.")
    return (f"{what}: waiting (asked at {read.asked:.4f} s) until a leader confirms its read index and the node has "
            f"applied that far; Step or Play.")


def _compare(settings: Any) -> str:
    """Settings of a recipe as a student would say them ("pre_vote and check_quorum on", "rate 0.909")."""
    on = [name for name, value in settings.items() if value is True]
    off = [name for name, value in settings.items() if value is False]
    other = [f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in settings.items() if not isinstance(value, bool)]
    parts = ([f"{' and '.join(on)} on"] if on else []) + ([f"{' and '.join(off)} off"] if off else []) + other
    return ", ".join(parts) or "no change"
