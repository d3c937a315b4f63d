"""A batch as an MLflow GenAI evaluation; the acceptance verdict, in the registry and from the CLI."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pandas as pd
import pytest
from gradio_client import Client, handle_file
from mlflow import MlflowClient

from compare.accept import main as accept_main
from compare.acceptance import Thresholds, accept
from compare.batch import read_prompts
from compare.evaluation import Batch, run_batch
from wrappers import GenerationOptions
from wrappers.config import ROOT, child_env
from wrappers.registry import use_store

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

PROMPTS = (
    "prompt,expected\nWhat is the capital of Spain?,Madrid\nHello! Who are you?,\nWhat is 7 plus 5?,12\n"
)
SCORERS = {"correct", "answers_agree", "mean_kl", "top1_agreement", "ttft_s", "decode_tokens_per_s"}


@pytest.fixture(scope="module")
def outcome(config, backends, tmp_path_factory):
    use_store(config.store_uri, config.artifact_root)  # module fixtures run before the autouse one
    folder = tmp_path_factory.mktemp("evaluation")
    (folder / "prompts.csv").write_text(PROMPTS)
    batch = Batch(
        read_prompts(folder / "prompts.csv"),
        "prompts.csv",
        "prompts.csv (test)",
        GenerationOptions(max_tokens=48),
    )
    return run_batch(backends, batch, folder)


def test_each_packaging_is_an_mlflow_genai_evaluation_under_the_batch_run(outcome):
    assert set(outcome.evaluation_runs) == {"transformers", "onnx"}
    for side, run_id in outcome.evaluation_runs.items():
        run = mlflow.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == outcome.run_id and run.data.tags["side"] == side
        traces = mlflow.search_traces(run_id=run_id, return_type="list")
        assert len(traces) == 3
        for trace in traces:
            names = {a.name for a in trace.info.assessments}
            wanted = SCORERS if side == "onnx" else SCORERS - {"mean_kl", "top1_agreement"}
            assert wanted <= names, names
            assert trace.info.token_usage["output_tokens"] > 0  # MLflow's Token Usage chart reads this
        assert run.data.metrics["answers_agree/mean"] == 1.0
    onnx_run = mlflow.get_run(outcome.evaluation_runs["onnx"])
    assert 0 < onnx_run.data.metrics["mean_kl/mean"] < 0.05
    assert onnx_run.data.metrics["correct/mean"] == 1.0  # two rows have an expected answer


def test_the_evaluation_traces_are_linked_to_each_logged_model(outcome):
    client = MlflowClient()
    for side, run_id in outcome.evaluation_runs.items():
        trace = mlflow.search_traces(run_id=run_id, return_type="list")[0]
        model_id = trace.info.trace_metadata["mlflow.modelId"]
        name, version = mlflow.get_run(outcome.run_id).data.params[f"model.{side}"].split("/")
        assert client.get_model_version(name, version).source == f"models:/{model_id}"  # its logged model
        assert len(mlflow.search_traces(model_id=model_id, return_type="list")) >= 3


def test_the_table_keeps_its_columns_and_gains_the_fidelity(outcome):
    table = outcome.table
    assert {"prompt", "transformers_output", "onnx_output", "agree"} <= set(table.columns)
    assert {"fidelity_tokens", "mean_kl", "max_kl", "top1_agreement"} <= set(table.columns)
    assert (table["fidelity_tokens"] > 0).all() and (table["top1_agreement"] > 0.9).all()
    assert pd.read_csv(outcome.csv)["mean_kl"].notna().all()


def test_the_verdict_is_tagged_on_the_onnx_model_version(outcome):
    name, version = mlflow.get_run(outcome.run_id).data.params["model.onnx"].split("/")
    tags = MlflowClient().get_model_version(name, version).tags
    assert outcome.acceptance.accepted
    assert tags["fidelity.verdict"] == "accept"
    assert float(tags["fidelity.mean_kl"]) == pytest.approx(outcome.acceptance.mean_kl, rel=1e-5)
    assert float(tags["fidelity.top1_agreement"]) == pytest.approx(outcome.acceptance.top1_agreement)
    assert tags["fidelity.dataset"] == "prompts.csv (test)" and tags["fidelity.run_id"] == outcome.run_id


def table(kl, agreement, tokens, correct):
    return pd.DataFrame(
        {"mean_kl": kl, "top1_agreement": agreement, "fidelity_tokens": tokens, "onnx_correct": correct}
    )


def test_acceptance_pools_tokens_and_names_every_failed_threshold():
    rows = table([0.0, 0.3], [1.0, 0.5], [30, 10], [True, False])
    verdict = accept(rows, Thresholds(max_kl=0.05, min_agreement=0.9, min_accuracy=0.75))
    assert verdict.mean_kl == pytest.approx(0.075) and verdict.top1_agreement == pytest.approx(0.875)
    assert verdict.accuracy == 0.5 and not verdict.accepted and len(verdict.reasons) == 3
    assert "REJECT" in verdict.summary() and "mean KL 0.075 > 0.05" in verdict.summary()
    assert accept(rows, Thresholds(max_kl=0.1, min_agreement=0.8)).accepted


def test_acceptance_rejects_what_it_cannot_check():
    nothing_scored = table([None], [None], [None], [None])
    assert accept(nothing_scored, Thresholds()).reasons == ("no answer could be scored",)
    no_expected = table([0.0], [1.0], [5], [None])
    assert "needs `expected` answers" in accept(no_expected, Thresholds(min_accuracy=0.5)).reasons[0]


def accept_cli(store_dir, *args):
    command = [sys.executable, "-m", "compare.accept", *args, "--data-dir", str(store_dir)]
    return subprocess.run(
        command, env=child_env(store_dir), cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_the_cli_exits_zero_on_accept_and_non_zero_on_reject(store_dir, backends, tmp_path, capsys):
    """The CLI's own code, in this process: `python -m compare.accept` exits with what `main` returns
    (the next test runs the module itself). Two child processes spent about 45 s here on imports
    and on loading both models again."""
    dataset = tmp_path / "ci.csv"
    dataset.write_text(PROMPTS)
    cli = ["--dataset", str(dataset), "--data-dir", str(store_dir)]
    assert accept_main(cli) == 0, capsys.readouterr().err[-2000:]
    assert "ACCEPT the ONNX packaging" in capsys.readouterr().out
    assert accept_main([*cli, "--accept-kl", "1e-12", "--accept-accuracy", "1"]) == 1, capsys.readouterr().err
    assert "REJECT" in (printed := capsys.readouterr().out) and "> 1e-12" in printed
    onnx = backends["onnx"].model_ref()
    assert MlflowClient().get_model_version(onnx.name, onnx.version).tags["fidelity.verdict"] == "reject"


def test_the_cli_refuses_bad_input_with_exit_two(store_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("question\nWhat?\n")
    assert accept_main(["--dataset", str(bad), "--data-dir", str(store_dir)]) == 2
    assert "needs a 'prompt' column" in capsys.readouterr().err
    # the module itself, as CI runs it (one child process: each spends seconds on its imports)
    result = accept_cli(store_dir, "--dataset", str(bad), "--accept-agreement", "1.5")
    assert result.returncode == 2 and "between 0 and 1" in result.stderr


def test_batch_endpoint_takes_the_thresholds_and_returns_the_verdict(server, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text(PROMPTS)
    client = Client(server, verbose=False)
    out = client.predict(file=handle_file(str(prompts)), accept_kl=1e-12, api_name="/batch")
    assert out["acceptance"]["verdict"] == "reject" and set(out["evaluation_runs"]) == {
        "transformers",
        "onnx",
    }
    assert "mean KL" in out["acceptance"]["summary"]
    with pytest.raises(
        Exception, match=r"accept_agreement must be a number from 0 to 1, or blank \(not checked\), got 2\."
    ):
        client.predict(file=handle_file(str(prompts)), accept_agreement=2, api_name="/batch")
