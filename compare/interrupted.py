"""Batches that outlive a crash: rows journaled as they are answered, runs ended at the next start.

Every run the app starts carries its process in tags: `process.host`, `process.pid`,
`process.started` (the pid's start time, so a reused pid is not taken for it) and
`process.lease`. A process holds its lease, a lock file in the spool folder, for as long as it
lives; the OS releases it when the process dies, whatever the host is called (a Space's
container gets a new name at each restart). At start, `end_interrupted` ends every RUNNING run
of the app's experiment whose process is gone: a batch run with the rows its journal kept,
KILLED and tagged `ended: interrupted`; an evaluation run KILLED too. A sibling process on the
same store keeps its runs: its lease is held.

The journal is one JSON line per answered row (`batches/<run_id>.jsonl`), written before the
row is reported: like the spool's WAL, a line in the OS's page cache survives the process being
killed, and a line the kill cut short is ignored.

Concession: a run whose lease is not in this spool folder (a remote store shared with another
machine, or a run started outside the app) is judged by its pid on the same host only, and
otherwise left alone: nothing here can tell whether it is alive.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import psutil
from filelock import FileLock, Timeout
from mlflow import MlflowClient

from compare.batch import end_batch_run, log_batch_run, summarize
from wrappers.errors import public_text
from wrappers.registry import EXPERIMENT

INTERRUPTED = "interrupted"


def process_tags(lease: str = "") -> dict[str, str]:
    """This process, as tagged on the runs it starts."""
    me = psutil.Process()
    tags = {"process.host": socket.gethostname(), "process.pid": str(me.pid)}
    return tags | {"process.started": f"{me.create_time():.3f}"} | ({"process.lease": lease} if lease else {})


class Lease:
    """This process's claim on its runs: a lock held until it dies, and where its batches journal."""

    def __init__(self, spool_dir: Path) -> None:
        self.folder = spool_dir / "processes"
        self.journals = spool_dir / "batches"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.journals.mkdir(parents=True, exist_ok=True)
        mine = process_tags()
        name = f"{mine['process.host']}-{mine['process.pid']}-{mine['process.started']}.lock"
        self._lock = FileLock(self.folder / name, thread_local=False)
        self._lock.acquire(timeout=0)
        self.tags = mine | {"process.lease": name}


class Journal:
    """The rows of one running batch, on disk as each is answered; nothing is kept without a folder."""

    def __init__(self, folder: Path | None, run_id: str) -> None:
        self.path = folder / f"{run_id}.jsonl" if folder else None

    def add(self, row: dict) -> None:
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(row, default=str) + "\n")

    def rows(self) -> list[dict]:
        """The rows kept; a last line cut short by a kill is left out."""
        if self.path is None or not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                break
        return rows

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def is_alive(tags: dict[str, str], lease: Lease) -> bool | None:
    """Whether the process that tagged a run still runs; None when nothing here can tell."""
    lock_file = lease.folder / tags.get("process.lease", "-")
    if lock_file.exists():
        lock = FileLock(lock_file, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True  # held: its process lives, here or on another host sharing the folder
        lock.release()
        return False
    if tags.get("process.host") != socket.gethostname():
        return None
    try:
        started = psutil.Process(int(tags["process.pid"])).create_time()
    except (psutil.NoSuchProcess, KeyError, ValueError):
        return False
    return f"{started:.3f}" == tags.get("process.started")


def end_interrupted(lease: Lease) -> list[str]:
    """End the RUNNING runs of the app's experiment whose process died; return their ids.

    Errors are printed, never raised: the app starts anyway and the next start tries again.
    """
    try:
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        running = mlflow.search_runs(
            [experiment.experiment_id], "attributes.status = 'RUNNING'", output_format="list"
        )
        ended = []
        for run in running:
            if "process.pid" in run.data.tags and is_alive(run.data.tags, lease) is False:
                _end(run, lease)
                ended.append(run.info.run_id)
        _forget_dead_leases(lease)
        return ended
    except Exception as exc:
        print(
            public_text(f"Could not end the interrupted runs: {type(exc).__name__}: {exc}"), file=sys.stderr
        )
        return []


def _end(run, lease: Lease) -> None:
    if MlflowClient().get_run(run.info.run_id).info.status != "RUNNING":
        return  # another process ended it meanwhile
    if run.data.tags.get("kind") == "batch":
        _end_batch(run, lease)
    else:
        reason = f"The app process ({_who(run)}) died during this run."
        end_batch_run(run.info.run_id, "KILLED", {"ended": INTERRUPTED, "ended.reason": reason})


def _end_batch(run, lease: Lease) -> None:
    """Log the journaled rows (if the table was not logged yet), then end the run KILLED, saying why."""
    run_id, total = run.info.run_id, run.data.tags.get("prompts.total", "?")
    logged = "prompts" in run.data.metrics  # the table was logged: the evaluation was running
    kept = int(run.data.metrics["prompts"]) if logged else log_journal(run_id, lease.journals, total)
    what = (
        f"during the evaluation, after all {kept} answered rows were logged"
        if logged
        else f"after {kept} of {total} prompts; the answered rows are logged"
    )
    reason = f"The app process ({_who(run)}) died {what}. No evaluation verdict."
    during = "evaluation" if logged else "rows"
    tags = {"ended": INTERRUPTED, "interrupted_at_row": str(kept), "interrupted_during": during}
    end_batch_run(run_id, "KILLED", tags | {"ended.reason": reason})
    Journal(lease.journals, run_id).remove()


def log_journal(run_id: str, journals: Path | None, total: int | str) -> int:
    """Log a batch's journaled rows into its run, as a finished batch's are; return how many."""
    rows = Journal(journals, run_id).rows()
    if rows:
        table = pd.DataFrame(rows)
        unanswered = float(int(total) - len(rows)) if str(total).isdigit() else None
        stats = summarize(table) | ({"unanswered_prompts": unanswered} if unanswered is not None else {})
        with tempfile.TemporaryDirectory(prefix="interrupted-") as folder:
            log_batch_run(run_id, table, stats, Path(folder))
    return len(rows)


def _who(run) -> str:
    return f"pid {run.data.tags.get('process.pid')} on {run.data.tags.get('process.host')}"


def _forget_dead_leases(lease: Lease) -> None:
    """Remove the lock files of dead processes, whose runs are all ended now."""
    for path in lease.folder.glob("*.lock"):
        lock = FileLock(path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        path.unlink(missing_ok=True)
        lock.release()
