"""`python -m server --host 127.0.0.1 --port 8000`: serve the models in COLLAGE_WEIGHTS_DIR (default weights/)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from server.app import create_app
from server.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    logging.getLogger("server").info(
        "settings: %s",
        settings.model_dump_json(exclude={"api_key"}) + (" (API key required)" if settings.api_key else ""),
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_per_message_deflate=False,  # deflating image frames costs ~3.3 ms vs ~0.09 ms per 64 KiB frame
        ws_max_size=settings.ws_max_bytes,  # uvicorn refuses a larger message before reading it (1009)
    )


if __name__ == "__main__":
    main()
