"""Serving at full size, on a kept store: when each pane's tokens arrive, each side's speed, and the
memory of both sides answering the longest request.

    .venv/bin/python -m benchmarks.fullscale.serve --data DIR [--memory-limit-gib 16]
        [--phases panes,speed,longest] [--request-timeout-s 1800]

`DIR` is an app data folder; on its first use the app's own `--log-only` fills
it (timed, as `benchmarks.fullscale` times it), so later runs skip the
minutes of building and logging. Then one warm start of `app.py`, inside a
memory cgroup when asked, and through gradio_client:

- panes: one streamed `/compare` (a 128-token prompt, 24 new tokens, no
  fidelity scoring): when each pane shows its first and its last token, as a
  visitor sees them, beside each side's own compute;
- speed: `/chat_transformers` and `/chat_onnx` alone, at prompts of 128, 1024
  and 2048 tokens: time to first token and decode speed, one side at a time;
- longest: one `/compare` at the longest prompt and the longest answer the
  app's limits allow: the peak memory of the whole app (its process tree's RSS
  and its cgroup's high-water mark, page cache included).

The request limit is raised (`--request-timeout-s`) so that the figures are
the models' own, not the limit's. The figures go to a JSON file beside the
rehearsal's (benchmarks/results/fullscale_serve.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.engines import prompt_of_length
from benchmarks.fullscale.rehearsal import (
    CACHE,
    RESULTS,
    Settings,
    _launch,
    _limited,
    _wait_for_models,
    run_app,
)
from benchmarks.fullscale.visitor import app_limits, speed, stream_compare
from benchmarks.machine import PeakRss
from benchmarks.served import free_port

GiB = 2**30
OUT = RESULTS.with_name("fullscale_serve.json")
SPEED_PROMPTS = (128, 1024, 2048)
LONGEST_DEADLINE_S = 1500  # a longest answer still going after this is cancelled
PANE_TOKENS = 24  # new tokens of the panes and turns phases


def measure(settings: Settings, data: Path, phases: list[str], progress=print) -> dict:
    """The figures of `phases` on the store in `data` (logged first if empty)."""
    from transformers import AutoTokenizer

    checkpoint = settings.cache / "shaped-32-bfloat16"
    args = ["--transformers-source", str(checkpoint), "--onnx-source", "build"]
    result: dict = {"measured": time.strftime("%Y-%m-%d %H:%M"), "env": settings.env}
    if not (data / "mlflow.db").exists():
        progress("log-only on a fresh store")
        result["log_only"] = run_app([*args, "--log-only"], data, settings, data.parent / "log-only.log")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    port, log = free_port(), data.parent / "serve.log"
    with _limited(settings.memory_limit) as group, log.open("w") as out:
        started = time.monotonic()
        process = _launch(args, data, settings, out, group, GRADIO_SERVER_PORT=str(port))
        memory = PeakRss(process.pid, every_s=0.1, tree=True)
        try:
            client = _wait_for_models(f"http://127.0.0.1:{port}/", process, log)
            result["ready_s"], result["rss_ready"] = time.monotonic() - started, memory.rss()
            limits = result["limits"] = app_limits(settings.env, log.read_text(errors="replace"))
            progress(f"ready in {result['ready_s']:.0f} s, RSS {result['rss_ready'] / GiB:.1f} GiB, {limits}")
            for phase in phases:
                result[phase] = PHASES[phase](client, tokenizer, limits, memory)
                save(result)  # a run cut short keeps the phases it finished
                progress(f"{phase}: {json.dumps(result[phase])[:300]}")
        finally:
            memory.stop()
            process.terminate()
            process.wait(timeout=120)
        result["peak_rss"] = memory.peak_since(0.0)
        result["cgroup_peak"] = group.peak() if group else None
        result["oom_kills"] = group.oom_kills() if group else None
    return result


def panes(client, tokenizer, limits: dict, memory: PeakRss) -> dict:
    """When each pane shows its first and last token, from the request's start (processor sharing)."""
    prompt = prompt_of_length(tokenizer, 128).messages[-1]["content"]
    return stream_compare(client, prompt, PANE_TOKENS)


def turns(client, tokenizer, limits: dict, memory: PeakRss) -> dict:
    """The same through /arena, whose blind battles take turns token by token, as /compare did
    before processor sharing; the vote's reveal says which label was which side."""
    prompt = prompt_of_length(tokenizer, 128).messages[-1]["content"]
    started = time.perf_counter()
    seen: dict[str, dict] = {}
    last = None
    for update in client.submit(prompt=prompt, max_tokens=PANE_TOKENS, api_name="/arena"):
        now = time.perf_counter() - started
        for label in ("model_a", "model_b"):
            text = (update.get(label) or {}).get("text") or ""
            mark = seen.setdefault(label, {"text": "", "first_s": None, "last_s": None})
            if text and text != mark["text"]:
                mark["first_s"] = mark["first_s"] or now
                mark["last_s"], mark["text"] = now, text
        last = update
    wall = time.perf_counter() - started
    reveal = client.predict(battle_id=last["battle_id"], choice="tie", api_name="/arena_vote")
    result = {"wall_s": wall}
    for label in ("model_a", "model_b"):
        side = reveal[label]
        result[side["side"]] = {
            "pane_first_s": seen[label]["first_s"], "pane_last_s": seen[label]["last_s"],
            "own_ttft_s": side["latency"]["ttft_s"], "own_total_s": side["latency"]["total_s"],
            "completion_tokens": side["usage"]["completion_tokens"], "error": side["error"],
        }  # fmt: skip
    return result


def longest(client, tokenizer, limits: dict, memory: PeakRss) -> dict:
    """Both sides answering the longest prompt with the longest answer the app accepts: its peak
    memory. The ONNX side allocates its KV cache for the whole request at once; transformers'
    grows by a fixed size per token, so an answer cut by the deadline is completed by arithmetic."""
    prompt = prompt_of_length(tokenizer, limits["prompt"]).messages[-1]["content"]
    mark = time.perf_counter()
    figures = stream_compare(client, prompt, limits["new"], LONGEST_DEADLINE_S)
    return figures | {"peak_rss": memory.peak_since(mark), "prompt_tokens": limits["prompt"]}


def speed_phase(client, tokenizer, limits: dict, memory: PeakRss) -> list[dict]:
    """Each side alone at each of SPEED_PROMPTS: time to first token and decode speed."""
    return speed(client, tokenizer, SPEED_PROMPTS, progress=lambda line: None)


def save(result: dict) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")


PHASES = {"panes": panes, "turns": turns, "speed": speed_phase, "longest": longest}


def main(argv: list[str] | None = None) -> None:
    global SPEED_PROMPTS, LONGEST_DEADLINE_S, PANE_TOKENS, OUT  # one run's settings
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the app's data folder, kept between runs")
    parser.add_argument("--memory-limit-gib", type=float)
    parser.add_argument("--phases", default="panes,speed,longest")
    parser.add_argument("--request-timeout-s", type=float, default=1800)
    parser.add_argument("--prompt-limit", type=int)
    parser.add_argument("--new-limit", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--speed-prompts", default="128,1024,2048", help="prompt lengths of the speed phase")
    parser.add_argument("--longest-deadline-s", type=float, default=LONGEST_DEADLINE_S)
    parser.add_argument("--pane-tokens", type=int, default=PANE_TOKENS)
    args = parser.parse_args(argv)
    SPEED_PROMPTS = tuple(int(n) for n in args.speed_prompts.split(","))
    LONGEST_DEADLINE_S, PANE_TOKENS, OUT = args.longest_deadline_s, args.pane_tokens, args.out
    env = {"PHI3_REQUEST_TIMEOUT_S": args.request_timeout_s, "PHI3_MAX_PROMPT_TOKENS": args.prompt_limit,
           "PHI3_MAX_NEW_TOKENS": args.new_limit}  # fmt: skip
    settings = Settings(
        memory_limit=int(args.memory_limit_gib * GiB) if args.memory_limit_gib else None,
        env={k: str(v) for k, v in env.items() if v is not None}, cache=CACHE,
    )  # fmt: skip
    args.data.mkdir(parents=True, exist_ok=True)
    result = measure(settings, args.data, args.phases.split(","), lambda line: print(line, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
