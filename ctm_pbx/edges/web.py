"""The aiohttp application: health now; the tracking-script API joins it later.

Errors leave as JSON ``{"error": …, "message": …}`` with a 4xx status; an
unexpected failure is logged and answered 500 in the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StatusProvider = Callable[[], dict]


def json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "the server failed; see its log")


def create_app(status: StatusProvider) -> web.Application:
    """The web app. ``status`` reports the daemon's state for ``/healthz``."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=64 * 1024)

    async def healthz(request: web.Request) -> web.Response:
        state = status()
        code = 200 if state.get("ari_connected") else 503
        return web.json_response(
            {"status": "ok" if code == 200 else "degraded", **state}, status=code
        )

    app.router.add_get("/healthz", healthz)
    return app
