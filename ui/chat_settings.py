"""The Chat tab's settings and examples, right under the prompt; both modes share the settings.

The boxes are made before they are placed (the examples fill the system prompt), then laid out
in an accordion beside the examples. Number boxes, not sliders: a value out of range is refused
with the API's words when it is used, never clamped in silence.
"""

from __future__ import annotations

import gradio as gr

from compare.service import Comparer

# What the tiny model can do (its own words or other ones), and one question outside its world.
EXAMPLES = [
    ["What is the capital of Spain?", ""],
    ["tell me japan's capital city please", "You are a helpful assistant."],
    ["What is seven times eight?", ""],
    ["Tell me a joke about atom", "You are a stand-up comedian."],
    ["Hello! Who are you?", ""],
    ["Who won the 2022 football World Cup?", ""],
]
# Wide enough for the three number boxes on one line (Gradio's 160 px each): opened, the settings
# are two rows under the prompt, and Tab from one box to the next scrolls nothing. In a column of
# 260 px they stacked six boxes high, 580 px, ending below a 1400x900 screen, so typing a value and
# pressing Tab (or clicking top_p) scrolled the answers off it. On a phone the column is full width.
SETTINGS_WIDTH = 520


def under_prompt(prompt: gr.Textbox, boxes: dict) -> gr.Column:
    """The examples beside the settings, right under the prompt; returns the examples' column."""
    with gr.Row(equal_height=False, elem_id="under-prompt"):
        with gr.Column(scale=4, min_width=300) as examples:  # they fill the named prompt
            gr.Examples(
                EXAMPLES,
                inputs=[prompt, boxes["system"]],
                label="Examples (click one to fill the prompt)",
                example_labels=[_example_label(*example) for example in EXAMPLES],  # buttons, not a table
                elem_id="examples",
            )
        with gr.Column(scale=3, min_width=SETTINGS_WIDTH):
            _settings(boxes)
    return examples


def _example_label(prompt: str, system: str) -> str:
    """
    >>> _example_label("Hi", ""), _example_label("Hi", "Be brief.")
    ('Hi', 'Hi (+ system prompt)')
    """
    return f"{prompt} (+ system prompt)" if system else prompt


def settings_boxes(comparer: Comparer) -> dict:
    """The generation settings, made before they are placed (the examples fill the system prompt)."""
    top, later = comparer.limits.max_new_tokens, {"render": False}
    return {
        "system": gr.Textbox("", label="System prompt", lines=1, max_lines=4, **later),
        **dict(zip(("max_tokens", "temperature", "top_p"), _setting_boxes(top, **later), strict=True)),
        "stop": gr.Textbox(
            "", label="Stop sequences (one per line)", lines=1, max_lines=4, elem_id="setting-stop", **later
        ),
        "scoring": gr.Checkbox(
            comparer.fidelity,
            label="Score fidelity after each answer (teacher-forced KL; charged to neither side)",
            interactive=comparer.fidelity,  # off in the configuration: off for everyone
            elem_id="fidelity-switch",
            **later,
        ),
    }


def _settings(boxes: dict) -> None:
    """The settings, one click beside the examples: opening them leaves the answers in view."""
    label = "Settings for both models"  # system prompt, max tokens, temperature, top_p, stop, fidelity
    with gr.Accordion(label, open=False, elem_id="settings"):
        with gr.Row():
            for name in ("max_tokens", "temperature", "top_p"):
                boxes[name].render()
        with gr.Row():
            for name in ("system", "stop", "scoring"):
                boxes[name].render()


def _setting_boxes(most_tokens: int, **kwargs) -> tuple[gr.Number, gr.Number, gr.Number]:
    """Number boxes that keep what is typed: a value out of range is refused with the API's words
    when it is used, never clamped in silence as a slider's box would."""
    top = f"Max new tokens (1 to {most_tokens})"
    return (
        gr.Number(min(128, most_tokens), label=top, elem_id="setting-max-tokens", **kwargs),
        gr.Number(
            0.0, label="Temperature (0 to 2; 0 = greedy)", step=0.05, elem_id="setting-temperature", **kwargs
        ),
        gr.Number(1.0, label="top_p (above 0, at most 1)", step=0.05, elem_id="setting-top-p", **kwargs),
    )
