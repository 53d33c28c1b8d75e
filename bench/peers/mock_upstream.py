#!/usr/bin/env python3
"""A stand-in for `keel mock-upstream` when no keel binary is at hand (run.sh's fallback).

GET /mock/todos/1 answers a fixed todo JSON after a fixed latency; any other path is a
404 after the same latency. HTTP/1.1 with keep-alive, standard library only (asyncio
streams), one process. Binds to the loopback address given; prints
`listening on HOST:PORT` once it accepts connections.

    python3 mock_upstream.py --listen 127.0.0.1:0 --latency 100ms
"""
import argparse
import asyncio
import json
import re
import sys

BODY = json.dumps(
    {"userId": 1, "id": 1, "title": "delectus aut autem", "completed": False}
).encode()
NOT_FOUND = b'{"error": "not found"}'


def parse_duration(text):
    """`100ms`, `0.1s`, `1s`, `0` -> seconds."""
    if text.strip() == "0":
        return 0.0
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(us|ms|s)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 100ms, 0.1s, 0)")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


async def handle(reader, writer, latency):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split()
            path = parts[1] if len(parts) > 1 else b""
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip().lower()
            length = int(headers.get(b"content-length", b"0") or 0)
            if length:
                await reader.readexactly(length)
            close = headers.get(b"connection") == b"close" or parts[-1:] == [b"HTTP/1.0"]
            if latency:
                await asyncio.sleep(latency)
            status, body = (b"200 OK", BODY) if path == b"/mock/todos/1" else (b"404 Not Found", NOT_FOUND)
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\n" + body
            )
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--latency", type=parse_duration, default=0.1)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.latency), host or "127.0.0.1", int(port), backlog=1024
    )
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
