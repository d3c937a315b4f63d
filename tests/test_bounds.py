"""A public Space holds: bounded work per request, safe files, clear errors, no server paths."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from pathlib import Path

import mlflow
import psutil
import pytest
from gradio_client import Client, handle_file

from compare.batch import read_prompts, results_csv, summarize
from compare.lanes import ModelSlot
from compare.owners import Asker
from compare.service import Comparer
from tests.conftest import raw_call
from ui.panels import run_batch
from wrappers.config import ROOT, Limits

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIDES = ("transformers", "onnx")
SPAIN = "What is the capital of Spain?"


def test_a_huge_prompt_is_refused_by_its_length_before_tokenizing_and_never_stored(client, config):
    store = Path(config.data_dir, "mlflow.db")
    before = store.stat().st_size
    with pytest.raises(Exception, match=r"has 10000000 characters; the limit is 32768 \(2048 tokens\)"):
        client.predict(prompt="x" * 10_000_000, max_tokens=1, api_name="/compare")
    time.sleep(1)
    assert store.stat().st_size - before < 1_000_000  # the 10 MB prompt was not written anywhere


@pytest.mark.parametrize("temperature", [1e-40, 1e-300, 5e-324, 0.001])
def test_tiny_temperatures_are_greedy_on_both_sides(client, temperature):
    greedy = client.predict(prompt=SPAIN, max_tokens=16, api_name="/compare")
    cold = client.predict(prompt=SPAIN, max_tokens=16, temperature=temperature, api_name="/compare")
    for side in SIDES:
        assert cold[side]["error"] is None, cold[side]["error"]
        assert cold[side]["response"] == greedy[side]["response"] | {
            k: cold[side]["response"][k] for k in ("id", "created")
        }


def test_formula_cells_are_neutralised_in_the_download_and_the_artifact(client, tmp_path):
    prompts = tmp_path / "formulas.csv"
    hostile = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)"]
    prompts.write_text(
        "prompt,expected\n" + "".join(f'"{p.replace(chr(34), chr(34) * 2)}",=1\n' for p in hostile)
    )
    out = client.predict(file=handle_file(str(prompts)), api_name="/batch")
    logged = mlflow.artifacts.download_artifacts(run_id=out["run_id"], artifact_path="batch_results.csv")
    rows = list(csv.DictReader(io.StringIO(Path(logged).read_text())))
    assert [r["prompt"] for r in rows] == [f"'{p}" for p in hostile]
    assert {r["expected"] for r in rows} == {"'=1"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r.values())


def test_tab_and_carriage_return_cells_are_neutralised_too():
    import pandas as pd

    text = results_csv(pd.DataFrame({"output": ["\tcmd", "\r=1", "fine"], "tokens": [-1, 2, 3]}))
    assert list(csv.reader(io.StringIO(text))) == [
        ["output", "tokens"],
        ["'\tcmd", "-1"],
        ["'\r=1", "2"],
        ["fine", "3"],
    ]


def test_a_csv_row_with_extra_fields_is_refused_with_its_line(tmp_path):
    prompts = tmp_path / "shifted.csv"
    prompts.write_text("prompt,expected\nWhat is 7 plus 5?,12\nWhat is the capital of Peru?,Lima,extra\n")
    with pytest.raises(ValueError, match="line 3 has 3 fields, the header has 2"):
        read_prompts(prompts)


def test_jsonl_expected_values_keep_their_text(tmp_path):
    prompts = tmp_path / "numbers.jsonl"
    rows = [
        {"prompt": "What is 7 plus 5?", "expected": 12},
        {"prompt": "Hi", "expected": 5},
        {"prompt": "Yo"},
    ]
    prompts.write_text("\n".join(map(json.dumps, rows)))
    assert list(read_prompts(prompts)["expected"]) == ["12", "5", None]


def test_a_row_where_both_sides_failed_is_not_agreement(client, tmp_path):
    prompts = tmp_path / "too-long.csv"
    prompts.write_text(
        f"prompt\n{SPAIN}\n{'capital ' * 3000}\n"
    )  # under the character limit, over the tokens
    out = client.predict(file=handle_file(str(prompts)), api_name="/batch")
    assert [r["agree"] for r in out["records"]] == [True, None]
    assert out["summary"]["agreement_rate"] == 1.0 and out["summary"]["failed_rows"] == 1


def test_agreement_is_absent_when_no_row_could_be_compared():
    import pandas as pd

    table = pd.DataFrame(
        {f"{side}_{k}": [None] for side in SIDES for k in ("latency_s", "tokens_per_s")}
        | {"agree": [None], "expected": [None]}
    )
    assert "agreement_rate" not in summarize(table) and summarize(table)["failed_rows"] == 1


def test_a_batch_over_the_row_limit_is_refused(client, tmp_path):
    prompts = tmp_path / "many.csv"
    prompts.write_text("prompt\n" + "Hello\n" * 201)
    with pytest.raises(Exception, match="between 1 and 200 prompts, found 201"):
        client.predict(file=handle_file(str(prompts)), api_name="/batch")


def test_an_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("prompt\n" + ("Hello " * 1000 + "\n") * 1100)  # about 6.6 MB
    with pytest.raises(Exception, match="(?i)too large|size|413"):
        client.predict(file=handle_file(str(big)), api_name="/batch")


def test_batches_leave_no_work_folders_behind(client, server_process, tmp_path):
    server_temp = Path(psutil.Process(server_process[1].pid).environ()["TMPDIR"])

    def folders():
        return set(server_temp.glob("batch-*"))

    before = folders()
    prompts = tmp_path / "two.csv"
    prompts.write_text(f"prompt\n{SPAIN}\nHello\n")
    client.predict(file=handle_file(str(prompts)), api_name="/batch")
    assert folders() - before == set()


def test_a_batch_stops_at_its_time_limit_and_keeps_what_it_answered(backends, tmp_path):
    comparer = Comparer(backends, Limits(batch_timeout_s=0.0), None, fidelity=False)
    prompts = tmp_path / "three.csv"
    prompts.write_text(f"prompt\n{SPAIN}\nHello\nWhat is 7 plus 5?\n")
    result = run_batch(comparer, prompts, "three.csv", Asker.of(None, "s"), tmp_path)
    assert len(result["table"]) == 1 and "Madrid" in result["table"]["onnx_output"][0]
    assert result["summary"]["unanswered_prompts"] == 2
    assert mlflow.get_run(result["run_id"]).data.metrics["unanswered_prompts"] == 2


def test_chat_requests_go_before_waiting_batch_rows():
    slot, order = ModelSlot(1), []
    with slot.take("batch"):  # a batch row is generating
        waiting = [
            threading.Thread(target=lambda lane=lane: _take(slot, lane, order))
            for lane in ("batch", "chat", "chat")
        ]
        for thread in waiting:
            thread.start()
            time.sleep(0.1)  # in this order: the next batch row first
    for thread in waiting:
        thread.join(5)
    assert order == ["chat", "chat", "batch"]


def _take(slot: ModelSlot, lane: str, order: list[str]) -> None:
    with slot.take(lane):
        order.append(lane)


def test_a_chat_request_is_answered_while_a_batch_runs(server, client, tmp_path):
    prompts = tmp_path / "long-batch.csv"
    prompts.write_text("prompt\n" + f"{SPAIN}\n" * 40)
    batch = Client(server, verbose=False).submit(file=handle_file(str(prompts)), api_name="/batch")
    while batch.status().code.name not in ("PROCESSING", "ITERATING", "FINISHED"):
        time.sleep(0.05)
    out = client.predict(prompt="What is 7 plus 5?", max_tokens=16, api_name="/compare")
    assert "12" in out["onnx"]["response"]["choices"][0]["message"]["content"]
    assert not batch.done()  # answered between batch rows, not after the batch
    assert len(batch.result(timeout=600)["records"]) == 40


def test_a_wrong_shaped_call_gets_a_reason_not_null(server):
    event, data = raw_call(server, "compare", '{"data": ["Hi", "", 8]}')
    assert event == "error" and "didn't receive enough input values" in data["error"], data


def test_nothing_a_visitor_sees_names_a_server_path(server, client, config):
    import httpx

    secret_folders = {str(config.data_dir.resolve()), str(ROOT), os.path.expanduser("~")}
    page = httpx.get(f"{server}config", timeout=30).text
    out = client.predict(prompt=SPAIN, max_tokens=8, api_name="/compare")
    seen = {"/config": page, "/compare": json.dumps(out)}
    for where, text in seen.items():
        for folder in secret_folders:
            assert folder not in text, f"{where} shows {folder}"
    assert out["transformers"]["raw"][0]["model"] == "…/tiny-phi3"
