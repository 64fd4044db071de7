"""The display process (`charity-ledger display`): the composition root of the gateway."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import FrameType

import uvicorn

from services.display.app import create_app, make_hub
from services.display.hub import Hub
from services.display.options import DisplayOptions
from services.display.venues import VenueCatalogue, load_catalogue
from services.platform.settings import Settings

log = logging.getLogger("charity.display")
# Screens reconnect together after a restart; the kernel queue must hold the burst.
LISTEN_BACKLOG = 4096


class _Server(uvicorn.Server):
    """Ends the event streams as soon as a stop is asked for.

    Uvicorn waits for open responses before it shuts down, and an event stream never
    ends by itself: ending them first lets every screen reconnect (to another gateway,
    or to this one once it is back) instead of waiting out the grace period.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.end_streams()
        super().handle_exit(sig, frame)

    def end_streams(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.hub.end_all, "shutdown")


class Gateway:
    """One gateway process's parts, for `run` and for tests and benchmarks that need a real one."""

    def __init__(
        self,
        settings: Settings,
        options: DisplayOptions | None = None,
        catalogue: VenueCatalogue | None = None,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or DisplayOptions()
        catalogue = catalogue or load_catalogue(self.options.venues_path)
        self.hub = make_hub(catalogue, self.options)
        self.app = create_app(settings, catalogue, self.options, hub=self.hub)
        self.port = port if port is not None else settings.display_port
        config = uvicorn.Config(
            self.app,
            host=self.options.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            backlog=LISTEN_BACKLOG,
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
        self.server = _Server(config, self.hub)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.port}"

    def run(self) -> None:
        """Serve in this thread until SIGINT or SIGTERM."""
        self.server.run()

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="display-gateway", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.server.end_streams()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def run(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s display %(levelname)s %(message)s")
    options = DisplayOptions()
    gateway = Gateway(settings, options)
    log.info(
        "display gateway on %s (epoch %s), venues from %s: %s",
        gateway.url,
        gateway.hub.epoch,
        options.venues_path,
        ", ".join(gateway.hub.catalogue.venues),
    )
    gateway.run()


if __name__ == "__main__":
    run()
