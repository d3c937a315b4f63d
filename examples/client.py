"""Compare both packagings from a script, through the running app's API.

python examples/client.py [URL]        # default http://127.0.0.1:7860/
"""

from __future__ import annotations

import sys

from gradio_client import Client


def main(url: str = "http://127.0.0.1:7860/") -> None:
    client = Client(url, verbose=False)
    out = client.predict(prompt="What is the capital of Spain?", max_tokens=64, api_name="/compare")
    for side in ("transformers", "onnx"):
        result = out[side]
        answer = result["response"]["choices"][0]["message"]["content"] if result["response"] else None
        print(f"{side:>12}: {answer!r}")
        print(f"{'':>12}  usage {result['usage']}  latency {result['latency']}")
    print("     verdict:", out["verdict"]["summary"])

    # Multi-turn: send the whole conversation.
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "What is 7 plus 5?"},
    ]
    out = client.predict(messages=messages, max_tokens=32, api_name="/compare_messages")
    print(
        "  multi-turn:",
        {
            side: out[side]["response"]["choices"][0]["message"]["content"]
            for side in ("transformers", "onnx")
        },
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
