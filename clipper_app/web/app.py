"""The web app: `create_app(settings, clipper_client_factory)` builds it, `serve` runs it under uvicorn.

One `ClipperClient` per app, connected in the lifespan (so inside the server's own event loop) and shared by
every request. Routers are per concern (`clipper_app/web/api.py` today; pages and their static files join the same app
later), errors are problem JSON (`clipper_app/web/problems.py`), access and body limits are `clipper_app/web/security.py`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
import uvicorn
from fastapi import FastAPI

from clipper.config import Settings, get_settings
from clipper_app.client import ClipperClient
from clipper_app.web import api, openapi, pages, problems
from clipper_app.web.security import BodyLimit, HostGuard, check_bind, served_hosts

ClientFactory = Callable[[Settings], Awaitable[ClipperClient]]
# A job's status and the jobs list are reused this long (clipper_app/client/reads.py): pages poll every second, and
# many of them (or many API clients) on one job then cost one query per job per second, not one each.
READ_MAX_AGE_S = 1.0


async def connect_client(settings: Settings) -> ClipperClient:
    return await ClipperClient.connect(settings, read_max_age_s=READ_MAX_AGE_S)


def create_app(settings: Settings | None = None, clipper_client_factory: ClientFactory = connect_client,
               bind: str | None = None) -> FastAPI:
    """The app; `bind`: the address it will listen on (also a host name it answers for)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clipper = await clipper_client_factory(settings)
        yield

    # No /docs or /redoc: FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN. The OpenAPI
    # document itself is served (/openapi.json), and docs/api.md explains it.
    app = FastAPI(title="clipper", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Durable media clipping on Temporal: submit media, follow and steer jobs, read their "
                              "outputs. Errors are RFC 9457 problem JSON with `error` = the typed error name.")
    app.state.settings = settings
    for router in api.ROUTERS:
        app.include_router(router)
    pages.mount(app)  # `/`, `/jobs/{id}` and `/static/…`: the pages for people, on the same client
    problems.install(app)
    openapi.install(app, settings)  # the document says what this server enforces (its token, its URL rules)
    app.add_middleware(BodyLimit, limit=settings.web_max_body_bytes)
    app.add_middleware(HostGuard, hosts=served_hosts(settings, bind or settings.web_host))  # outermost: first
    return app


def server(settings: Settings, host: str | None = None, port: int | None = None,
           clipper_client_factory: ClientFactory = connect_client) -> uvicorn.Server:
    """A uvicorn server for the app; refuses (`WebTokenRequired`) a non-loopback host without a token."""
    host = host or settings.web_host
    check_bind(host, settings)
    config = uvicorn.Config(create_app(settings, clipper_client_factory, bind=host), host=host,
                            port=settings.web_port if port is None else port, log_config=None, access_log=False,
                            server_header=False, lifespan="on")
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """`clipper web`: serve until interrupted. The client connects first, so a missing Temporal server is one
    typed line (`TemporalUnavailable`), not a failed application start-up."""
    clipper = await connect_client(settings)

    async def connected(_: Settings) -> ClipperClient:
        return clipper

    srv = server(settings, host, port, connected)
    shown = "127.0.0.1" if srv.config.host in ("0.0.0.0", "::") else srv.config.host  # a URL the server answers
    structlog.get_logger().info("web.started", url=f"http://{shown}:{srv.config.port}/",
                                token=bool(settings.web_token), protect_reads=settings.web_protect_reads)
    await srv.serve()
    return 0
