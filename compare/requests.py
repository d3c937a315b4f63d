"""What each request may hold: one schema per kind of request, with this server's limits.

The Chat tab, blind mode and every API endpoint check their whole input here
before anything runs (`check` from `wrappers/schema.py`), so a mistake gets the
same words wherever it is made. The schemas are built once per `Limits`, since
the limits are part of each field's description.

    >>> from wrappers.limits import Limits
    >>> checked(schemas(Limits()).prompt, {"prompt": " ", "max_tokens": 8}).prompt  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    wrappers.schema.InputError: prompt must be text that is not blank, at most 32,768 characters ..., got " ".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, create_model, model_validator
from pydantic_core import PydanticCustomError

from compare.arena import ARENA_CHOICES
from compare.errors import RequestError
from compare.votes import ALIASES, CHOICES
from wrappers.chat import check_length, max_characters
from wrappers.limits import Limits
from wrappers.options import GenerationOptions, settings_schema, stops_as_lines
from wrappers.schema import InputError, Strict, check

__all__ = ["Schemas", "check_request", "checked", "options_of", "schemas"]
ROLES = ("system", "user", "assistant")
VOTE_CHOICES = (*CHOICES, *ALIASES)  # left and right: the older names of the two sides
HEX_ID = r"^[0-9a-f]{32}$"
SETTINGS = ("max_tokens", "temperature", "top_p", "stop")


@dataclass(frozen=True)
class Schemas:
    """Every request's schema under one server's limits."""

    prompt: type[Strict]  # /compare, /chat_*, /arena, the Chat tab's Send: a prompt and the settings
    messages: type[Strict]  # /compare_messages
    settings: type[Strict]  # the settings alone (export, regenerate)
    vote: type[Strict]  # /vote and the Chat tab's vote buttons
    arena_vote: type[Strict]  # /arena_vote and blind mode's vote buttons
    replay: type[Strict]  # /replay
    thresholds: type[Strict]  # /batch and the Batch tab


@cache
def schemas(limits: Limits) -> Schemas:
    """The schemas with `limits` in their fields and descriptions."""
    settings = settings_schema(limits.max_new_tokens)
    comment = (
        Annotated[str, StringConstraints(max_length=limits.max_comment_chars)],
        Field("", description=f"text of at most {limits.max_comment_chars:,} characters"),
    )
    return Schemas(
        prompt=_prompt_schema(limits, settings),
        messages=_messages_schema(limits, settings),
        settings=settings,
        vote=_vote_schema("VoteRequest", "comparison_id", "/compare", VOTE_CHOICES, comment),
        arena_vote=_vote_schema("ArenaVoteRequest", "battle_id", "/arena", ARENA_CHOICES, comment),
        replay=_replay_schema(limits.max_conversation_bytes),
        thresholds=_thresholds_schema(),
    )


def _texts(limits: Limits) -> tuple[Any, Any, str]:
    """(the prompt's type, the system prompt's type, their size in words) under the token limit."""
    chars, tokens = max_characters(limits.max_prompt_tokens), limits.max_prompt_tokens
    prompt = Annotated[str, StringConstraints(max_length=chars), AfterValidator(_not_blank)]
    system = Annotated[str, StringConstraints(max_length=chars)]
    return prompt, system, f"at most {chars:,} characters ({tokens} tokens)"


def _fidelity_field() -> tuple[type, Any]:
    return bool, Field(True, description="true or false")


def _prompt_schema(limits: Limits, settings: type[Strict]) -> type[Strict]:
    """/compare, /chat_*, /arena, the Chat tab's Send: a prompt and the settings."""
    prompt, system, text = _texts(limits)
    return create_model(
        "PromptRequest",
        __base__=settings,
        prompt=(prompt, Field(description=f"text that is not blank, {text}")),
        system_prompt=(system, Field("", description=f"text of {text}")),
        fidelity=_fidelity_field(),
        __validators__={"fits": model_validator(mode="after")(_prompt_fits(limits.max_prompt_tokens))},
    )


def _messages_schema(limits: Limits, settings: type[Strict]) -> type[Strict]:
    """/compare_messages: a whole conversation and the settings."""
    _, system, text = _texts(limits)
    most = 2 * limits.max_conversation_turns + 1  # messages: each turn's two, and a system prompt
    message = create_model(
        "Message",
        __base__=Strict,
        role=(Literal[ROLES], Field(description="one of " + ", ".join(ROLES))),
        content=(system, Field(description=f"text of {text}")),
    )
    return create_model(
        "MessagesRequest",
        __base__=settings,
        messages=(
            list[message],
            Field(
                min_length=1,
                max_length=most,
                description=f'a list of 1 to {most} {{"role", "content"}} messages, the last from the user',
            ),
        ),
        fidelity=_fidelity_field(),
        __validators__={"fits": model_validator(mode="after")(_messages_fit(limits.max_prompt_tokens))},
    )


def _vote_schema(name: str, id_name: str, endpoint: str, choices: tuple[str, ...], comment) -> type[Strict]:
    """A vote: the id `endpoint` returned, one of `choices`, and an optional comment."""
    returned = (
        Annotated[str, StringConstraints(pattern=HEX_ID)],
        Field(description=f"an id returned by {endpoint} (32 hexadecimal digits)"),
    )
    return create_model(
        name,
        __base__=Strict,
        **{id_name: returned},
        choice=(Literal[choices], Field(description="one of " + ", ".join(choices))),
        comment=comment,
    )


def _replay_schema(max_bytes: int) -> type[Strict]:
    """/replay: an exported conversation file's JSON text."""
    return create_model(
        "ReplayRequest",
        __base__=Strict,
        conversation=(
            Annotated[str, StringConstraints(min_length=1, max_length=max_bytes)],
            Field(description=f"an exported file's JSON text, at most {max_bytes:,} bytes"),
        ),
    )


def _thresholds_schema() -> type[Strict]:
    """/batch and the Batch tab: the acceptance thresholds, each optional."""
    share = Field(None, ge=0.0, le=1.0, description="a number from 0 to 1, or blank (not checked)")
    return create_model(
        "ThresholdsRequest",
        __base__=Strict,
        accept_kl=(float | None, Field(None, ge=0.0, description="a number of at least 0, or blank")),
        accept_agreement=(float | None, share),
        accept_accuracy=(float | None, share),
    )


def checked(model: type[Strict], values: Any, where: str = "") -> Any:
    """`values` checked as `model` (stop sequences may be text, one per line), or `InputError`."""
    return check(model, stops_as_lines(values), where)


def check_request(model: type[Strict], values: Any) -> Any:
    """`checked`, with a mistake refused as the service refuses it: `RequestError`, its message kept."""
    try:
        return checked(model, values)
    except InputError as exc:
        raise RequestError(str(exc)) from None


def _not_blank(text: str) -> str:
    """A prompt of spaces is refused (in Python: a regex `pattern` fails on lone surrogates,
    which the app accepts and stores as U+FFFD)."""
    if not text.strip():
        raise PydanticCustomError("blank", "blank")
    return text


def options_of(request: Strict) -> GenerationOptions:
    """The generation options of a checked request."""
    return GenerationOptions(*(getattr(request, name) for name in SETTINGS))


def _prompt_fits(max_prompt_tokens: int):
    def fits(request):
        """The system prompt and the prompt together must fit the token limit, too."""
        check_length([{"content": request.system_prompt}, {"content": request.prompt}], max_prompt_tokens)
        return request

    return fits


def _messages_fit(max_prompt_tokens: int):
    def fits(request):
        """The whole conversation must fit the token limit, and end with the user's turn."""
        if request.messages[-1].role != "user":
            raise ValueError("messages: the last message must be from the user.")
        check_length([{"content": m.content} for m in request.messages], max_prompt_tokens)
        return request

    return fits
