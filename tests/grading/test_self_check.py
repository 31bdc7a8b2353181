"""The mutation self-check: every planted bug is caught by a check that names its rule (CI runs it)."""

from __future__ import annotations

import json

import pytest

from raftlab.grading import CHECKS
from raftlab.core import Replica
from raftlab.grading.mutants import MUTANTS, self_check


def test_at_least_ten_mutants_each_a_small_subclass_of_the_core_replica() -> None:
    assert len(MUTANTS) >= 10
    for mutant in MUTANTS:
        assert mutant.__bases__ == (Replica,)
        assert mutant.RULE in {r.strip() for c in CHECKS for r in c.rule.split(",")}
        assert mutant.__doc__


def test_cli_self_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    from raftlab.cli import main

    status = main(["grade", "--self-check", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary == {"mutants": len(MUTANTS), "caught": len(MUTANTS), "reference_score": 1.0,
                       "skeleton_score": 0.0}
    assert summary["caught"] == summary["mutants"] >= 10
    assert status == 0
    rows = [json.loads(line) for line in lines[:-1]]
    assert [r["candidate"] for r in rows[:2]] == ["reference", "skeleton"]
    assert rows[0]["failed"] == []
    assert len(rows[1]["hints"]) >= 4 and all(":" in h for h in rows[1]["hints"])
    for row in rows[2:]:
        assert row["caught"] and row["score"] < 1.0, row
        assert row["caught_by"], row
        assert any(row["broken_rule"] in f.split("[")[1] for f in row["failed"]), row  # a check named after it


def test_self_check_api_on_other_seeds() -> None:
    outcome = self_check(seeds=1, jobs=1)
    assert outcome["summary"]["caught"] == outcome["summary"]["mutants"] == len(MUTANTS)
    reference, skeleton = outcome["reports"][:2]
    assert reference.score == 1.0 and skeleton.score == 0.0
