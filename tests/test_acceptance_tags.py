"""The verdict's tags on the ONNX model version when batches end at the same moment, on a real
MLflow SQLite store: each write lands, none is refused."""

from __future__ import annotations

import threading

from mlflow import MlflowClient

from compare.acceptance import Acceptance, tag_export
from wrappers.registry import use_store
from wrappers.results import ModelRef, Result

NAME = "phi3-onnx-tagged"


def test_batches_ending_together_tag_one_version_without_a_refused_write(tmp_path):
    use_store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    client = MlflowClient()
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, source=str(tmp_path)).version
    onnx = Result(model=ModelRef(NAME, version))
    reference = Result(model=ModelRef("phi3-transformers", "1"))
    errors: list[BaseException] = []

    def batch_ends(run: int) -> None:
        accepted = run % 2 == 0
        verdict = Acceptance(accepted, 0.01 * run, 0.9, None, 32, 0, () if accepted else ("too far",))
        try:
            tag_export(onnx, reference, verdict, f"dataset-{run}", f"run-{run}")
        except BaseException as exc:  # noqa: BLE001 (collected and shown below)
            errors.append(exc)

    threads = [threading.Thread(target=batch_ends, args=(run,)) for run in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    tags = client.get_model_version(NAME, version).tags
    run = int(tags["fidelity.run_id"].removeprefix("run-"))  # one batch's verdict, whole
    assert tags["fidelity.dataset"] == f"dataset-{run}"
    assert tags["fidelity.verdict"] == ("accept" if run % 2 == 0 else "reject")
