"""The conversation both models share in the Chat tab: its turns, and what each model is sent.

Both panes always hold the same turns (the same prompts); each turn keeps each
model's own answer, so each model is sent its own earlier answers. A turn that
ended in an error or was stopped stays on screen but is sent to neither model
again, so the two sides never drift apart by one of them keeping a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from wrappers.results import Result

OK, ERROR, STOPPED = "ok", "error", "stopped"


@dataclass(frozen=True)
class Answer:
    """One model's answer in a turn, as the pane shows it."""

    text: str = ""
    error: str | None = None

    @classmethod
    def of(cls, result: Result) -> Answer:
        return cls(result.text, result.error)


@dataclass(frozen=True)
class Turn:
    prompt: str
    answers: dict[str, Answer] = field(default_factory=dict)  # side -> answer
    status: str = OK  # OK, ERROR or STOPPED (the last two are not sent again)

    def answered(self, results: dict[str, Result], stopped: bool = False) -> Turn:
        """This turn with `results` filled in; its status follows them."""
        answers = self.answers | {side: Answer.of(r) for side, r in results.items()}
        failed = any(a.error for a in answers.values())
        return replace(self, answers=answers, status=STOPPED if stopped else ERROR if failed else OK)


def messages_for(turns: list[Turn], side: str, system_prompt: str, prompt: str) -> list[dict[str, str]]:
    """What `side` is sent: the system prompt, the good turns with its own answers, the new prompt.

    >>> turns = [Turn("Hi", {"a": Answer("Hello!")}), Turn("Bad", {"a": Answer("", "boom")}, ERROR)]
    >>> [m["content"] for m in messages_for(turns, "a", "", "Bye")]
    ['Hi', 'Hello!', 'Bye']
    """
    system_prompt = system_prompt or ""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for turn in turns:
        if turn.status == OK:
            messages += [
                {"role": "user", "content": turn.prompt},
                {"role": "assistant", "content": turn.answers.get(side, Answer()).text},
            ]
    return messages + [{"role": "user", "content": prompt}]


def histories_differ(turns: list[Turn], sides: tuple[str, ...]) -> bool:
    """True when the models' earlier answers differ, so they are sent different conversations."""
    return len({str(messages_for(turns, side, "", "")) for side in sides}) > 1


def turns_from_sent(sent: dict[str, list[dict[str, str]]], last: dict[str, Answer]) -> tuple[str, list[Turn]]:
    """(system prompt, turns) of a recorded comparison: what each side was sent, and its answer.

    >>> sent = {"a": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
    ...               {"role": "user", "content": "Bye"}]}
    >>> system, turns = turns_from_sent(sent, {"a": Answer("See you.")})
    >>> system, [(t.prompt, t.answers["a"].text) for t in turns]
    ('', [('Hi', 'Hello!'), ('Bye', 'See you.')])
    """
    first = next(iter(sent.values()), [])
    system = first[0]["content"] if first and first[0]["role"] == "system" else ""
    prompts = [m["content"] for m in first if m["role"] == "user"]
    replies = {
        side: [m["content"] for m in messages if m["role"] == "assistant"] for side, messages in sent.items()
    }
    turns = [
        Turn(prompt, {side: Answer(said[k]) for side, said in replies.items() if k < len(said)})
        for k, prompt in enumerate(prompts[:-1])
    ]
    if prompts:
        turns.append(Turn(prompts[-1], dict(last)).answered({}))  # its status follows the answers
    return system, turns
