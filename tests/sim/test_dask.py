"""raftlab on a Dask cluster (issue 19, item 3): `raftlab chaos/mc/figure16 --scheduler ADDRESS`.

A `LocalCluster` of two worker processes stands in for a real cluster: the same seeds give the same
results there as here (the same results hash), from Python and from the command line. Skipped without
Dask (`pip install 'raftlab[dask]'`; the `test` extra installs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask.distributed")

from distributed import Client, LocalCluster

import raftlab
from raftlab import cli
from raftlab.mc.search import _parallelism
from raftlab.sim.chaos import ChaosResult, run_campaign

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(1, 51)  # the acceptance criterion's 50 seeds
DURATION = 3.0  # virtual seconds a seed: 50 of them take about 3 s here on one core
MUTANT = ["--mutant", "VotesWithoutUpToDateCheck", "--max-term", "2", "--max-log", "2", "--crashes", "0",
          "--drops", "0", "--depth", "8", "--safety-only"]  # a planted bug, found after 8 steps in under a second


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster) as client:
        yield client


def _raftlab_file() -> str:
    return raftlab.__file__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raftlab.cli", *args], capture_output=True, text=True, timeout=180,
                          cwd=ROOT)


def _last_json(done: subprocess.CompletedProcess[str], *timings: str) -> dict[str, Any]:
    """The command's closing JSON line, without its wall-clock figures."""
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in timings:
        figures.pop(key)
    return figures


def test_the_workers_run_this_raftlab(client: Client) -> None:
    assert set(client.run(_raftlab_file).values()) == {raftlab.__file__}
    assert _parallelism(client.get_executor()) == 2  # the frontier split: four parts per worker thread


def test_a_campaign_on_the_cluster_has_the_local_results_hash(client: Client) -> None:
    seen: list[ChaosResult] = []
    remote = run_campaign(SEEDS, DURATION, executor=client.get_executor(), progress=seen.append)
    local = run_campaign(SEEDS, DURATION)
    assert [r.seed for r in seen] == list(SEEDS)  # the executor's map keeps the order
    assert remote.results == local.results and remote.hash() == local.hash()
    assert remote.as_dict()["events"] == local.as_dict()["events"] > 0


def test_the_chaos_command_on_the_cluster_prints_the_local_results_hash(cluster: LocalCluster) -> None:
    common = ["chaos", "--seeds", str(len(SEEDS)), "--duration", str(DURATION), "--json"]
    remote = _run(*common, "--scheduler", cluster.scheduler_address)
    local = _run(*common)
    assert remote.returncode == local.returncode == 0, remote.stdout + remote.stderr + local.stderr
    assert _last_json(remote, "events_per_s") == _last_json(local, "events_per_s")
    assert _last_json(remote)["results_hash"] == _last_json(local)["results_hash"]
    assert _last_json(remote)["events"] > 0
    assert remote.stderr.rstrip().splitlines()[-1].startswith(f"chaos: {len(SEEDS)}/{len(SEEDS)} seeds in ")


def test_the_mc_command_on_the_cluster_finds_the_planted_bug_as_here(cluster: LocalCluster) -> None:
    remote = _run("mc", *MUTANT, "--scheduler", cluster.scheduler_address, "--json")
    pool = _run("mc", *MUTANT, "--workers", "2", "--json")  # split into as many parts: the same figures
    serial = _run("mc", *MUTANT, "--json")
    assert remote.returncode == pool.returncode == serial.returncode == 1, remote.stdout + remote.stderr
    found = _last_json(remote, "seconds", "states_per_s")
    assert found == _last_json(pool, "seconds", "states_per_s")
    here = _last_json(serial)
    assert found["violation"]["property"] == here["violation"]["property"] == "Leader Completeness"
    assert (found["violation"]["steps"], found["violation"]["detail"]) == (here["violation"]["steps"],
                                                                           here["violation"]["detail"])


def test_the_figure16_command_on_the_cluster_gives_the_local_figures(cluster: LocalCluster) -> None:
    remote = _run("figure16", "--trials", "5", "--scheduler", cluster.scheduler_address, "--json")
    local = _run("figure16", "--trials", "5", "--workers", "2", "--json")
    assert remote.returncode == local.returncode == 0, remote.stdout + remote.stderr
    assert _last_json(remote, "wall_s") == _last_json(local, "wall_s")
    assert remote.stderr.rstrip().splitlines()[-1].startswith("figure16: 46/46 trials in ")  # the progress line


def test_scheduler_and_workers_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["chaos"], ["mc"], ["figure16"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main([*command, "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"])
        assert exit_.value.code == 2
        assert "not allowed with argument --scheduler" in capsys.readouterr().err


def test_without_dask_the_command_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # (an import of it now fails)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["chaos", "--seeds", "1", "--duration", "1", "--scheduler", "tcp://127.0.0.1:8786"])
    assert "pip install 'raftlab[dask]'" in str(exit_.value.code)
