"""The request gate: a call's envelope is checked before Gradio reads it.

Gradio parses a call's JSON body with a recursive parser, and refuses a call with
too few values by raising a ValueError that it prints as a traceback and sends back
with Python's object names in it ("<gradio.components.api_component.Api object at
0x…>"); a malformed file value for /batch goes the same way. This ASGI middleware
sits in front of every call route (`/call/<api>`, `/run/<api>`, `/queue/join`):
it refuses, with one clear sentence and HTTP 422, a body that is too large, nested
too deep, not `{"data": [...]}`, short of values for its endpoint, or holding a
file value that is not an uploaded file's description. Everything else, the values
themselves, is the handlers' own schema's to check (see `compare/requests.py`).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from ui.login import _read_body, _replay, _reply
from wrappers.schema import InputError, bounded_json, shown

MAX_BODY_BYTES = 40 * 2**20  # a 10 MB prompt is refused by its handler, with its length
MAX_BODY_DEPTH = 32  # a chat pane's messages need 6 levels
CALL = re.compile(r"/(?:call|run)/(?P<api>[^/]+)/?$")


class RequestGate:
    """ASGI middleware; `blocks` is the app, read once it is built, for each endpoint's inputs."""

    def __init__(self, app, blocks) -> None:
        self.app, self.blocks = app, blocks

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        call = CALL.search(path)
        if scope["type"] != "http" or scope["method"] != "POST" or not (call or path.endswith("/queue/join")):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        try:
            self._check(body, call.group("api") if call else None)
        except InputError as exc:
            return await _reply(send, 422, str(exc))
        await self.app(scope, _replay(body), send)

    def _check(self, body: bytes, api: str | None) -> None:
        envelope = bounded_json(body, MAX_BODY_BYTES, "The request", MAX_BODY_DEPTH)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), list):
            raise InputError('The request must be a JSON object {"data": [values...]}.')
        fn = self._endpoint(api, envelope.get("fn_index"))
        if fn is None:
            return  # Gradio answers an unknown endpoint itself, clearly
        data, inputs, names = envelope["data"], fn.inputs, _names(fn)
        name = f"/{fn.api_name}" if isinstance(fn.api_name, str) else "This event"
        if len(data) < len(inputs):
            raise InputError(f"{name} takes {len(inputs)} values ({', '.join(names)}); got {len(data)}.")
        for index, block in enumerate(inputs):
            if type(block).__name__ == "File" and not _file_value(data[index]):
                raise InputError(
                    f"{name}: value {index + 1} ({names[index]}) must be null or an uploaded file "
                    f'({{"path": ..., "meta": {{"_type": "gradio.FileData"}}}}), got {shown(data[index])}.'
                )

    def _endpoint(self, api: str | None, fn_index: Any):
        fns = self.blocks.fns
        if api is not None:
            return next((fn for fn in fns.values() if fn.api_name == api), None)
        return fns.get(fn_index) if isinstance(fn_index, int) and not isinstance(fn_index, bool) else None


def _names(fn) -> list[str]:
    """The endpoint's parameter names, as its function declares them (else its inputs' labels)."""
    try:
        names = [p for p in inspect.signature(fn.fn).parameters if p not in ("request", "progress")]
    except (TypeError, ValueError):
        names = []
    if len(names) == len(fn.inputs):
        return names
    return [str(getattr(block, "label", None) or type(block).__name__.lower()) for block in fn.inputs]


def _file_value(value: Any) -> bool:
    """Null, or a file's description as Gradio sends it (a `path` string; Gradio checks the rest)."""
    return value is None or isinstance(value, dict) and isinstance(value.get("path"), str)
