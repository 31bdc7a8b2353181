"""The bundled scenario transcripts (``raftlab/sim/transcripts/*.txt``), one test each.

A transcript holds commands and the output each printed when the transcript was last reviewed
(the format is described in `raftlab.sim.transcript`). The test runs the commands again and fails,
with a unified diff naming the file and the command's line, if any output differs; it also fails if
a ``check`` fails or a ``run-until`` times out.

When a change alters the outputs on purpose (new wording of a trace sentence, a different timing),
run ``python -m pytest tests/sim/test_transcripts.py --rewrite-transcripts``: the expected outputs are
rewritten in place with the actual ones. Then review the change like code, with
``git diff raftlab/sim/transcripts``: read every changed block and check that each transcript still
shows what its opening comment claims (a split vote still shows two candidates in one term, ...);
fix the comment or the commands if not. Failed checks still fail the test while rewriting.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raftlab.sim import Simulation
from raftlab.sim.transcript import (
    TRANSCRIPTS, Transcript, TranscriptError, load_scenario, rewrite, run_transcript, transcript_names,
    transcript_path,
)


def check_transcript(path: Path, rewriting: bool) -> None:
    """Run (or rewrite) one transcript; fail the test with a readable report."""
    result = rewrite(path) if rewriting else run_transcript(path)
    if result.failures or (not rewriting and result.mismatches):
        pytest.fail(result.diff(), pytrace=False)


@pytest.fixture
def rewriting(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--rewrite-transcripts", default=False))


@pytest.mark.parametrize("name", transcript_names())
def test_transcript(name: str, rewriting: bool) -> None:
    check_transcript(TRANSCRIPTS[name], rewriting)


def test_the_bundled_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 15
    for name, path in TRANSCRIPTS.items():
        transcript = Transcript.load(path)
        assert path.read_text(encoding="utf-8").startswith("# "), f"{name} opens with a comment paragraph"
        assert len(transcript.description) > 100, f"{name}: the comment says what it shows"
        assert any(c.name == "check" for c in transcript.commands), f"{name} asserts something"
        assert transcript_path(name) == path
    assert TRANSCRIPTS["split_vote"].name == "split_vote.txt"
    assert Transcript.load(TRANSCRIPTS["figure8"]).title.startswith("The paper's Figure 8")


def _altered_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    path = tmp_path / f"{name}.txt"
    shutil.copy(TRANSCRIPTS[name], path)
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_changed_expected_line_fails_with_a_readable_diff(tmp_path: Path) -> None:
    right = "[  0.1752s] node 3 won the election of term 1 with votes from [0, 2, 3]."
    wrong = "[  0.1752s] node 3 won the election of term 1 with votes from [0, 1, 3]."
    path = _altered_copy(tmp_path, "first_election", right, wrong)
    line = next(c.line for c in Transcript.load(path).commands if c.text == "run-until leader")
    with pytest.raises(pytest.fail.Exception) as failure:
        check_transcript(path, rewriting=False)
    message = str(failure.value)
    assert f"{path}:{line}: the output of `run-until leader` differs" in message
    assert f"--- {path} (expected)" in message and f"+++ {path} (actual)" in message
    assert f"\n-{wrong}\n" in message and f"\n+{right}\n" in message
    changed = [x for x in message.splitlines() if x[:1] in "-+" and not x.startswith(("---", "+++"))]
    assert changed == [f"-{wrong}", f"+{right}"], "only the changed line differs"
    # rewriting puts the actual output back: the copy is the bundled file again
    check_transcript(path, rewriting=True)
    assert path.read_text(encoding="utf-8") == TRANSCRIPTS["first_election"].read_text(encoding="utf-8")


def test_a_failed_check_fails_even_when_rewriting(tmp_path: Path) -> None:
    path = _altered_copy(tmp_path, "first_election", "check one-leader leader=3 term=1 on=all",
                         "check one-leader leader=2 term=1 on=all")
    line = next(c.line for c in Transcript.load(path).commands if c.text.startswith("check one-leader"))
    for rewriting in (False, True):
        with pytest.raises(pytest.fail.Exception) as failure:
            check_transcript(path, rewriting)
        assert f"{path}:{line}: `check one-leader leader=2 term=1 on=all` failed" in str(failure.value)
        assert "FAIL: leader=2: the leader is node 3" in str(failure.value)
    assert "FAIL: leader=2" in path.read_text(encoding="utf-8"), "the rewritten file shows the failure too"


def test_rewrite_fills_in_empty_outputs_and_keeps_everything_else(tmp_path: Path) -> None:
    original = TRANSCRIPTS["deposed_leader"].read_text(encoding="utf-8")
    transcript = Transcript.parse(original, "deposed_leader.txt")
    blank = transcript.with_outputs([""] * len(transcript.commands))
    assert "won the election" not in blank and blank.count("\n----\n") == len(transcript.commands)
    path = tmp_path / "deposed_leader.txt"
    path.write_text(blank, encoding="utf-8")
    result = rewrite(path)
    assert not result.failures
    assert path.read_text(encoding="utf-8") == original


def test_commands_written_without_outputs_are_reported_then_filled_in_by_rewrite(tmp_path: Path) -> None:
    # How a student starts a transcript: commands only. It runs (and replays in the app) at once.
    path = tmp_path / "mine.txt"
    path.write_text("# Mine.\n\nsim n=3 seed=4\n\ntimeout 2\nrun-until leader=2\ncheck leader=2\n", encoding="utf-8")
    result = run_transcript(path)
    assert not result.ok and not result.failures and len(result.mismatches) == 4
    assert f"{path}:5: the output of `timeout 2` has no expected output yet" in result.diff()
    assert load_scenario(path).leader() == 2
    rewrite(path)
    text = path.read_text(encoding="utf-8")
    assert text.count("\n----\n") == 4 and "check leader=2\n----\nok\n" in text
    assert run_transcript(path).ok


def test_two_runs_give_identical_output() -> None:
    first, second = run_transcript("lossy_network"), run_transcript("lossy_network")
    assert [b.actual for b in first] == [b.actual for b in second]
    assert first.sim.trace.hash() == second.sim.trace.hash()
    assert first.sim is not second.sim


@pytest.mark.parametrize(("text", "line", "words"), [
    ("# a comment\n\nsim n=3 seed=1\n----\n\nfly 2\n----\n", 6, "unknown command 'fly'"),
    ("sim n=3 seed=1\n----\n\ncheck leader=x\n----\n", 4, "leader must be an integer"),
    ("sim n=3 seed=1\n----\n\ncheck shiny\n----\n", 4, "unknown predicate 'shiny'"),
    ("sim n=3 seed=1\n----\n\nrun 1 fast=yes\n----\n", 4, "unknown option 'fast' for 'run'"),
    ("sim n=3 seed=1 machine=counter\n----\n\nsubmit put x 1\n----\n", 4, "a counter takes 'submit add K'"),
    ("sim n=3 seed=1\n----\n\nsubmit put x\n----\n", 4, "put takes 2 argument(s)"),
    ("run 1\n----\n", 1, "the first command must be 'sim'"),
    ("sim n=3 seed=1\n----\n\n----\n", 4, "'----' without a command"),
    ("sim n=3\n----\n", 1, "'sim' needs n= and seed="),
    ("sim n=3 seed=1\n----\n\ncheck up on=none\n----\n", 4, "node must be an integer, not 'none'"),
    ("sim n=3 seed=1\n----\n\nrun 1 show=votes\n----\n", 4, "unknown event kind(s) votes"),
    ("sim n=3 seed=1 drift-bound=0.9\n----\n", 1, "drift-bound must be at least 1"),
    ("sim n=3 seed=1 max-inflight=0\n----\n", 1, "max-inflight must be at least 1"),
    ("sim n=3 seed=1\n----\n\nclock 1 0\n----\n", 4, "rate must be positive"),
    ("sim n=3 seed=1\n----\n\nclock 1\n----\n", 4, "usage: clock N RATE"),
    ("sim n=3 seed=1\n----\n\ntransfer x\n----\n", 4, "node must be an integer"),
    ("sim n=3 seed=1\n----\n\nread x to=me\n----\n", 4, "to must be an integer"),
    ("sim n=3 seed=1\n----\n\ncheck read.1=done\n----\n", 4, "a read's state is one of ready, abandoned"),
    ("sim n=3 seed=1\n----\n\ncheck read.1.size=3\n----\n", 4, "read.K=STATE or read.K.value=VALUE"),
])
def test_a_parse_error_names_the_file_and_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(TranscriptError) as error:
        Transcript.parse(text, "scenarios/bad.txt")
    assert str(error.value).startswith(f"scenarios/bad.txt:{line}: "), str(error.value)
    assert words in str(error.value)
    assert error.value.line == line and error.value.path == "scenarios/bad.txt"


def test_an_error_while_running_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("sim n=3 seed=1\n----\n\ncrash 7\n----\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match=rf"^{path}:4: node 7 does not exist: the nodes are 0-2$"):
        run_transcript(path)


def test_an_output_with_blank_lines_uses_the_long_form() -> None:
    text = "sim n=3 seed=1\n----\n----\nfirst\n\nsecond\n----\n----\n\nstate\n----\nold\n"
    transcript = Transcript.parse(text, "t.txt")
    assert [c.expected for c in transcript.commands] == ["first\n\nsecond", "old"]
    assert transcript.with_outputs(["first\n\nsecond", "old"]) == text
    assert transcript.with_outputs(["one line", "old"]) == "sim n=3 seed=1\n----\none line\n\nstate\n----\nold\n"


def test_load_scenario_gives_the_simulation_at_the_end() -> None:
    sim = load_scenario("two_leaders")
    assert isinstance(sim, Simulation)
    assert sim.leader() == 1 and sim.replicas[3].term == 2
    steps = sim.steps
    sim.rewind(to_event=steps // 2)  # the app's time slider works on a replayed transcript
    assert sim.steps == steps // 2
    assert load_scenario(TRANSCRIPTS["two_leaders"]).trace.hash() == load_scenario("two_leaders").trace.hash()


EVERY_COMMAND = """\
sim n=3 seed=7 latency=0.004,0.012 heartbeat=0.05 election=0.15,0.3 snapshot-delta=50
----

timeout 1
----

step 2
----

deliver verbose
----

run-until leader=1 timeout=1
----

submit put x 1 wait
----

submit cas x 1 2 wait
----

submit cas x none 3 to=1 wait
----

submit append x y to=1 wait
----

submit get x wait
----

submit delete x wait client=9 seq=4
----

network drop=0.5 duplicate=0.1 latency=0.002,0.02
----

link 1 2 latency=0.03,0.03 drop=0
----

unlink 1 2
----

network drop=0 duplicate=0
----

partition 0 | 1 2
----

cut 1 0
----

uncut 1 0
----

disconnect 2
----

connect 2
----

heal
----

drop-next 1 2
----

run 0.2 quiet
----

trace last=3 show=committed
----

drop-in-flight to=0
----

stats
----

in-flight
----

log 1
----

state
----

check one-leader leader=1 vote=1 on=all
----

check req.1=applied req.2=applied req.3=applied req.4=applied req.5=applied req.6=applied on=all
----

check kv.x=none last-index>=7 applied!=0 role=follower on=0,2
----

check up on=all
----
"""


def test_every_command_runs() -> None:
    text = EVERY_COMMAND
    result = run_transcript(text)
    outputs = {b.command.text: b.actual for b in result}
    assert not result.failures, result.diff()
    assert "received VoteRequest" in outputs["step 2"] and "received vote granted" in outputs["deliver verbose"]
    assert outputs["run 0.2 quiet"] == ""
    assert len(outputs["trace last=3 show=committed"].splitlines()) == 3
    assert outputs["stats"].startswith("messages sent: ")
    assert "#2 cas x 1->2" in outputs["log 1"] and "#3 cas x none->3" in outputs["log 1"]
    assert "#6 delete x" in outputs["log 1"]
    assert outputs["state"].splitlines()[1].split() == ["node", "role", "term", "vote", "commit", "applied", "log"]
    assert result.sim is not None and result.sim.replicas[1].machine.results[(9, 4)] is True  # x existed
    # the same text again: the same outputs
    assert [b.actual for b in run_transcript(text)] == [b.actual for b in result]


def test_the_commands_beyond_figure_2_set_options_transfer_read_and_change_clocks(tmp_path: Path) -> None:
    text = ("sim n=3 seed=2 pre-vote check-quorum read-lease drift-bound=1.2 max-inflight=4\n\nrun-until leader\n\n"
            "submit put x 1 wait\n\nread x wait\n\nread x to=0 wait\n\nclock 0 1.1\n\ntransfer 0\n\n"
            "run-until leader=0 timeout=0.3\n\nread x\n\ncheck read.1=ready read.1.value=1 read.2.value=1 "
            "read.3=pending\n\nrun 0.2\n\ncheck read.3=ready read.3.value=1\n")
    result = run_transcript(text)
    assert not result.failures, result.diff()
    sim = result.sim
    assert sim is not None and sim.leader() == 0 and sim.clock_rate(0) == 1.1
    assert sim.options == {"pre_vote": True, "check_quorum": True, "read_lease": True, "drift_bound": 1.2,
                           "max_inflight": 4}
    outputs = {b.command.text: b.actual for b in result}
    assert "up to 4 AppendEntries in flight per follower; options: pre-vote, check-quorum, read lease (drift " \
           "bound 1.2)" in outputs[text.splitlines()[0]]
    assert "asked for pre-votes" in outputs["run-until leader"]
    assert "'x' is '1'" in outputs["read x wait"] and "clock" in outputs["clock 0 1.1"]
    assert "TimeoutNow" in outputs["run-until leader=0 timeout=0.3"]
    assert "read of 'x'" in outputs["read x"]  # RI-CURRENT: answered once the new leader's no-op commits
    failing = run_transcript(text.replace("read.3=ready read.3.value=1\n", "read.3=abandoned read.1.value=2 "
                                                                          "read.9=ready\n"))
    assert failing.blocks[-1].actual.splitlines() == [
        "FAIL: read.3=abandoned: read #3 is ready", "FAIL: read.1.value=2: read #1 read 1",
        "FAIL: read.9=ready: there is no read #9 yet (3 asked)"]
    path = tmp_path / "lease.txt"
    path.write_text("sim n=3 seed=1 read-lease\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match="read_lease needs check_quorum"):
        run_transcript(path)


def test_the_command_line_runs_and_rewrites_transcripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    assert main(["transcript", "split_vote", "figure8"]) == 0
    assert capsys.readouterr().out.splitlines() == ["split_vote: ok (16 commands)", "figure8: ok (24 commands)"]
    mine = tmp_path / "mine.txt"
    mine.write_text("sim n=3 seed=4\n\ntimeout 2\n\nrun-until leader=2\n\ncheck leader=1\n", encoding="utf-8")
    assert main(["transcript", str(mine)]) == 1
    assert "has no expected output yet" in capsys.readouterr().out
    assert main(["transcript", "--rewrite", str(mine)]) == 1  # rewritten, but a check fails: never hidden
    out = capsys.readouterr().out
    assert "FAILED" in out and "`check leader=1` failed" in out
    assert "check leader=1\n----\nFAIL" in mine.read_text(encoding="utf-8")
    assert main(["transcript", "no_such_transcript"]) == 2
    assert "no bundled transcript 'no_such_transcript'" in capsys.readouterr().err
