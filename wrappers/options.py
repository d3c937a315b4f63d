"""Validated generation options, shared by both wrappers, and the settings schema they come from.

One dataclass so that both panes always get identical settings. The settings a
visitor or a file sends are checked by one schema (`settings_schema`, see
`wrappers/schema.py`): the Chat tab, every API endpoint, import and replay give the
same limits in the same words, rather than failing deep inside transformers or
onnxruntime-genai.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from pydantic import Field, create_model, field_validator

from wrappers.schema import Strict, check

MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARACTERS = 256  # per stop sequence: the scanner holds back text as long as the longest
MAX_NEW_TOKENS_LIMIT = 4096
MIN_SAMPLING_TEMPERATURE = 0.01  # below it, logits / temperature overflow float32: treated as greedy
STOP_DESCRIPTION = (
    f"text with at most {MAX_STOP_SEQUENCES} stop sequences, one per line (or a list of them), "
    f"each at most {MAX_STOP_CHARACTERS} characters"
)


StopSequence = Annotated[str, Field(max_length=MAX_STOP_CHARACTERS)]


class _Settings(Strict):
    """Sampling settings as a request or a file gives them; `max_tokens`'s limit is set per server."""

    max_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS_LIMIT)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="a number from 0 to 2 (0: greedy)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="a number above 0 and at most 1")
    stop: tuple[StopSequence, ...] = Field((), max_length=MAX_STOP_SEQUENCES, description=STOP_DESCRIPTION)

    @field_validator("stop", mode="before")
    @classmethod
    def _lines(cls, value: Any) -> Any:
        """Empty stop sequences are dropped."""
        if isinstance(value, list | tuple):
            value = tuple(s for s in value if s != "")
        return value


@cache
def settings_schema(max_new_tokens: int = MAX_NEW_TOKENS_LIMIT) -> type[_Settings]:
    """The settings schema of a server that allows `max_new_tokens` new tokens per answer."""
    return create_model(
        "Settings",
        __base__=_Settings,
        max_tokens=(
            int,
            Field(
                min(128, max_new_tokens),
                ge=1,
                le=max_new_tokens,
                description=f"a whole number from 1 to {max_new_tokens}",
            ),
        ),
    )


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings; `temperature == 0` means greedy decoding.

    A temperature between 0 and `MIN_SAMPLING_TEMPERATURE` becomes 0 (greedy) for both sides:
    sampling that cold picks the likeliest token anyway, and 1e-40 would divide the logits into
    infinities (transformers then fails with "probability tensor contains inf").

    >>> GenerationOptions(temperature=1e-40).temperature, GenerationOptions(temperature=0.5).greedy
    (0.0, False)
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        fields = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        checked = check(settings_schema(), fields | {"stop": self.stop})
        object.__setattr__(self, "stop", checked.stop)
        temperature = checked.temperature  # a float: the transformers flavor's schema refuses an int
        object.__setattr__(
            self, "temperature", 0.0 if temperature < MIN_SAMPLING_TEMPERATURE else temperature
        )
        object.__setattr__(self, "top_p", checked.top_p)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def checked(
        cls, settings: Mapping[str, Any], max_new_tokens: int = MAX_NEW_TOKENS_LIMIT, where: str = ""
    ) -> GenerationOptions:
        """Options from what a request or a file sent, checked against this server's limit.

        Raises `InputError` naming the first mistake; stop sequences may be text, one per line.

        >>> GenerationOptions.checked({"max_tokens": 8, "stop": "###\\n\\nEND"}).stop
        ('###', 'END')
        >>> GenerationOptions.checked({"max_tokens": 600}, 512, "settings")
        Traceback (most recent call last):
        wrappers.schema.InputError: settings.max_tokens must be a whole number from 1 to 512, got 600.
        """
        values = check(settings_schema(max_new_tokens), stops_as_lines(settings), where)
        return cls(values.max_tokens, values.temperature, values.top_p, values.stop)


def stops_as_lines(values: Any) -> Any:
    """Request values with stop sequences given as text split into lines, as the schema takes them.

    >>> stops_as_lines({"stop": "###\\n\\nEND"})
    {'stop': ['###', '', 'END']}
    """
    if isinstance(values, Mapping) and isinstance(values.get("stop"), str):
        return {**values, "stop": values["stop"].splitlines()}
    return values
