"""A crash loses no batch: a SIGKILL during the rows or the evaluation, then a restart.

The app really runs and is really killed (SIGKILL, timed by the batch's row-by-row progress or
by its evaluation run appearing in the store); the next start must end the batch KILLED with
the rows it answered and say why, and leave no run RUNNING. A live sibling's runs are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest

from compare.acceptance import Thresholds
from compare.batch import read_prompts, recent_batches
from compare.evaluation import Batch, run_batch
from compare.interrupted import Lease, end_interrupted, process_tags
from tests.conftest import app_server
from tests.test_abandoned import WAIT_S, call, wait_for_batch_run
from ui import tables
from wrappers import GenerationOptions
from wrappers.config import ROOT, child_env
from wrappers.registry import EXPERIMENT

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

ROWS = 16


class RestartableApp:
    """`app.py` on the shared store, which a test can SIGKILL and start again."""

    def __init__(self, store_dir: Path, stack: contextlib.ExitStack) -> None:
        self.store_dir, self.stack, self.starts = store_dir, stack, 0
        self.start()

    def start(self) -> None:
        self.starts += 1
        self.url, self.process = self.stack.enter_context(
            app_server(self.store_dir, f"interrupted-{self.starts}", {"PHI3_STREAM_INTERVAL_S": "0"})
        )

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=WAIT_S)


@pytest.fixture(scope="module")
def app(store_dir, backends):
    with contextlib.ExitStack() as stack:
        yield RestartableApp(store_dir, stack)


def start_batch(url: str, folder: Path, name: str):
    """Upload a batch of ROWS capital questions; return its source name and the /batch call's data."""
    prompts = folder / f"{name}-{time.time_ns()}.csv"
    prompts.write_text("prompt\n" + "What is the capital of Spain?\n" * ROWS)
    with prompts.open("rb") as f:
        (path,) = httpx.post(f"{url}gradio_api/upload", files={"files": f}, timeout=WAIT_S).json()
    file = {"path": path, "orig_name": prompts.name, "meta": {"_type": "gradio.FileData"}}
    defaults = Thresholds()
    return prompts.name, [file, defaults.max_kl, defaults.min_agreement, None]


def batch_run(source: str):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    runs = mlflow.search_runs(
        [experiment.experiment_id], f"tags.kind = 'batch' and tags.source = '{source}'", output_format="list"
    )
    return runs[0] if runs else None


def logged_rows(run_id: str) -> list[list]:
    table = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="batch_results.json")
    return json.loads(Path(table).read_text())["data"]


def test_a_batch_killed_during_its_rows_keeps_them_and_ends_killed_saying_where(app, tmp_path):
    source, data = start_batch(app.url, tmp_path, "killed-in-rows")
    with call(app.url, "batch", data) as stream:
        for _, (update,) in stream:
            if update["answered"] >= 3:
                app.kill()  # before the client leaves: not "abandoned"
                break
    seen = update["answered"]
    assert batch_run(source).info.status == "RUNNING"  # the dead process cannot end it
    app.start()
    run = wait_for_batch_run(source)
    kept = int(run.data.tags["interrupted_at_row"])
    assert run.info.status == "KILLED" and run.data.tags["ended"] == "interrupted"
    assert seen <= kept < ROWS  # every reported row was on disk; at most the rows after it are new
    assert run.data.tags["interrupted_during"] == "rows" and "abandoned" not in run.data.tags
    assert f"died after {kept} of {ROWS} prompts" in run.data.tags["ended.reason"]
    assert run.data.metrics["prompts"] == kept and run.data.metrics["unanswered_prompts"] == ROWS - kept
    rows = logged_rows(run.info.run_id)
    assert len(rows) == kept and all("Madrid" in " ".join(map(str, row)) for row in rows)
    shown = tables.batches(recent_batches(None)).value  # the History tab's table
    mine = [r for r in shown["data"] if r[shown["headers"].index("Run")] == run.info.run_id[:8]]
    assert mine[0][shown["headers"].index("Status")] == "KILLED"
    assert "died after" in mine[0][shown["headers"].index("What happened")]


def test_a_batch_killed_during_its_evaluation_leaves_no_run_running(app, tmp_path):
    source, data = start_batch(app.url, tmp_path, "killed-in-evaluation")
    with call(app.url, "batch", data) as stream:
        for _, (update,) in stream:
            if update["answered"] == ROWS:
                break
        evaluation = wait_for_evaluation_run(source)
        app.kill()
    assert mlflow.get_run(evaluation).info.status == "RUNNING"
    app.start()
    run = wait_for_batch_run(source)
    assert run.info.status == "KILLED" and run.data.tags["interrupted_during"] == "evaluation"
    assert f"during the evaluation, after all {ROWS} answered rows" in run.data.tags["ended.reason"]
    assert "fidelity.verdict" in run.data.tags  # reached before the evaluation, but the export is untagged
    assert len(logged_rows(run.info.run_id)) == ROWS
    children = mlflow.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", output_format="list"
    )
    assert children and all(child.info.status != "RUNNING" for child in children)
    assert mlflow.get_run(evaluation).data.tags["ended"] == "interrupted"


def wait_for_evaluation_run(source: str) -> str:
    """The id of the batch's first evaluation run, as soon as the store holds it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        run = batch_run(source)
        if run is not None:
            children = mlflow.search_runs(
                [run.info.experiment_id],
                f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.kind = 'evaluation'",
                output_format="list",
            )
            if children:
                return children[0].info.run_id
        time.sleep(0.05)
    raise AssertionError(f"no evaluation run for {source} within {WAIT_S} s")


SIBLING = (
    "import json, sys; from pathlib import Path; from compare.interrupted import Lease; "
    "lease = Lease(Path(sys.argv[1])); print(json.dumps(lease.tags), flush=True); sys.stdin.read()"
)


def test_a_live_siblings_runs_are_kept_and_a_dead_ones_are_ended(store_dir, tmp_path):
    """Two processes on one spool folder: runs of the live one stay RUNNING until it is killed."""
    sibling = subprocess.Popen(
        [sys.executable, "-c", SIBLING, str(tmp_path)],
        env=child_env(store_dir),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ids = []
    try:
        its_tags = json.loads(sibling.stdout.readline())
        mine = Lease(tmp_path)
        experiment = mlflow.set_experiment(EXPERIMENT).experiment_id
        by_lease = mlflow.MlflowClient().create_run(experiment, tags={"kind": "evaluation"} | its_tags)
        by_pid = {k: v for k, v in its_tags.items() if k != "process.lease"}  # no lease: judged by pid
        by_pid_only = mlflow.MlflowClient().create_run(experiment, tags={"kind": "evaluation"} | by_pid)
        ours = mlflow.MlflowClient().create_run(experiment, tags={"kind": "evaluation"} | process_tags())
        ids = [r.info.run_id for r in (by_lease, by_pid_only, ours)]
        assert not set(ids) & set(end_interrupted(mine))
        assert {mlflow.get_run(i).info.status for i in ids} == {"RUNNING"}
        sibling.send_signal(signal.SIGKILL)
        sibling.wait(timeout=WAIT_S)
        assert set(ids[:2]) <= set(end_interrupted(mine))
        assert [mlflow.get_run(i).info.status for i in ids] == ["KILLED", "KILLED", "RUNNING"]
        assert not (tmp_path / "processes" / its_tags["process.lease"]).exists()  # its lease is forgotten
    finally:
        sibling.kill()
        if ids:
            mlflow.MlflowClient().set_terminated(ids[-1], "FINISHED")


def test_a_batch_that_fails_ends_failed_saying_why(backends, tmp_path):
    """A batch that raises does not stay RUNNING either (here: a pane the table needs is missing)."""
    source = f"fails-{time.time_ns()}.csv"
    (tmp_path / source).write_text("prompt\nWhat is the capital of Spain?\n")
    batch = Batch(read_prompts(tmp_path / source), source, source, GenerationOptions(max_tokens=4))
    with pytest.raises(KeyError):
        run_batch({"transformers": backends["transformers"]}, batch, tmp_path)
    run = batch_run(source)
    assert run.info.status == "FAILED" and run.data.tags["ended"] == "failed"
    assert run.data.tags["ended.reason"] == "KeyError: 'onnx'"
