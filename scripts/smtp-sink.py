#!/usr/bin/env python3
"""A local SMTP sink for CI: accepts every message on 127.0.0.1 and writes each one, exactly as
received, to DIR/<n>-<random>.eml (via a temporary name, so a reader never sees half a file).

    smtp-sink.py --port PORT --dir DIR [--port-file FILE]

With --port 0 it binds a free port and writes the port it got to --port-file once it is
listening. It runs until killed. Needs aiosmtpd (PyPI).
"""

import argparse
import asyncio
import itertools
import os
import signal
import socket
import sys
import uuid

from aiosmtpd.controller import Controller

_counter = itertools.count(1)


class SaveToDir:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        name = f"{next(_counter):06d}-{uuid.uuid4().hex}.eml"
        tmp = os.path.join(self.directory, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 OK saved"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port-file")
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    port = args.port or free_port()
    controller = Controller(
        SaveToDir(args.dir),
        hostname="127.0.0.1",
        port=port,
        # Keep the message bytes as sent (no decoding to str, no header rewriting).
        decode_data=False,
        data_size_limit=10 * 1024 * 1024,
    )
    controller.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, args.port_file)
    print(f"smtp-sink listening on 127.0.0.1:{port}, writing to {args.dir}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
