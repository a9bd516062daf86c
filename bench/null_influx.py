"""An HTTP endpoint that accepts every InfluxDB write at once (204), to time the collector without
the database's own cost. Run as its own process: python -m bench.null_influx PORT"""

from __future__ import annotations

import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


def main() -> None:
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", accept)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
