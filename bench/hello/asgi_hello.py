"""The ASGI-mode baseline of scripts/bench: the same hello-world on functions-framework's ASGI mode."""

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import PlainTextResponse


@functions_framework.aio.http
async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")
