#!/usr/bin/env python3
"""localstripe (PyPI: a stateful fake of Stripe's API) for CI, on 127.0.0.1 only.

    run-localstripe.py --port-file FILE

Binds a free port on 127.0.0.1 (localstripe's own launcher listens on every interface and
keeps its state in /tmp/localstripe.pickle between runs; this one does neither), writes the
port to FILE once listening, and serves until killed. Webhooks are registered through
localstripe's `POST /_config/webhooks/{id}` (url, secret, events[]), and it signs each
delivery with that secret in Stripe's `Stripe-Signature` format.
"""

import argparse
import asyncio
import logging
import os
import socket

from aiohttp import web

import localstripe.resources as resources
from localstripe.server import app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()

    # Keep every run's state in memory only.
    resources.Store.dump_to_disk = lambda self: None

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    logger = logging.getLogger("aiohttp.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler())

    async def started(_app):
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)

    app.on_startup.append(started)
    web.run_app(app, sock=sock, access_log=logger, print=None)


if __name__ == "__main__":
    main()
