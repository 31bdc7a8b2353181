"""README.md stays true: its example runs as written, its commands match CI, its table is complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_blocks() -> list[str]:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)


def _run_example(tmp_path: Path, name: str, timeout: float = 60) -> str:
    """Run the python block after ``<!-- example: NAME -->`` in a fresh directory; its stdout."""
    code = README.split(f"<!-- example: {name} -->", 1)[1]
    code = re.search(r"```python\n(.*?)\n```", code, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_three_steps_example_runs_as_written(tmp_path):
    assert _run_example(tmp_path, "three-steps").strip() == "every replica counts {1: 15, 2: 15, 3: 15}"


def test_readme_beyond_figure_2_example_runs_as_written(tmp_path):
    assert _run_example(tmp_path, "beyond-figure-2").strip() == "ready 1 True"


def test_readme_model_checking_example_runs_as_written(tmp_path):
    out = _run_example(tmp_path, "model-checking", timeout=120)
    lines = out.strip().splitlines()
    assert len(lines) == 9 and lines[-1].startswith("  => Leader Completeness violated: "), out  # 8 steps
    assert (tmp_path / "cx.txt").read_text().startswith("# Model checker counterexample: Leader Completeness")


def test_readme_has_one_main_command_and_one_test_command_and_ci_runs_the_test_command():
    blocks = _bash_blocks()
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), blocks
    main, tests = blocks
    assert "raftlab lab" in main
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == tests, "the last line of .ci/run must be README's test command, exactly"


def test_readme_maps_every_little_raft_name():
    table = README.split("## Little Raft names in raftlab", 1)[1].split("\n## ", 1)[0]
    little_raft = ["register_transition_state", "apply_transition", "get_pending_transitions", "get_snapshot",
                   "create_snapshot", "set_snapshot", "StateMachineTransition::get_id", "send_message",
                   "receive_messages", "halt", "register_leader", "Replica::new", "Replica::start",
                   "TransitionState::Queued", "TransitionState::Committed", "TransitionState::Applied",
                   "NotLeader", "ConflictWithLeader", "AppendEntryRequest", "AppendEntryResponse", "VoteRequest",
                   "VoteResponse", "InstallSnapshotRequest", "InstallSnapshotResponse", "LogEntry", "Snapshot"]
    for name in little_raft:
        assert f"`{name}" in table or f"::{name}" in table, name
    import raftlab

    for name in re.findall(r"\| `(?:raftlab\.)?([A-Z][A-Za-z]+)[(`.]", table):
        if "::" not in name:
            assert hasattr(raftlab, name.split("(")[0]), f"README names raftlab.{name}, which does not exist"


def test_raftlab_demo_command_prints_agreement():
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "demo", "--transitions", "5"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("all 3 replicas agree: value")
    assert sum("applied #5" in line for line in lines) == 3


def test_raftlab_demo_rejects_bad_arguments():
    done = subprocess.run([sys.executable, "-m", "raftlab.cli", "demo", "--replicas", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "replicas must be >= 1" in done.stderr


def test_readme_simulator_example_runs():
    code = README.split("## The simulator", 1)[1]
    code = re.search(r"```python\n(.*?)\n```", code, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md (simulator example)", "exec"), namespace)
    sim = namespace["sim"]
    assert sim.steps == 100  # rewound to step 100
    assert "became" in sim.trace.explain() or "received" in sim.trace.explain()
