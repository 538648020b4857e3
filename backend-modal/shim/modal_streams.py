"""What comes out of a sandbox, bounded before the shim holds it: output lines cut at LINE_MAX
bytes, the result files of a fetch within its caps, and the tunnel's relay. Part of the shim
(modal_shim.py imports it); the sandbox runs the benchmark and its agent patch, so nothing read
from it is trusted to be small.
"""

import asyncio
import base64
import ssl
import sys

LINE_MAX = 64 * 1024  # an output line is cut here
FETCH_FILES_MAX = 256  # files sent by one fetch
SKIPPED_LISTED_MAX = 64  # left-out files named in a fetch reply


async def lines(stream):
    """(line, bytes cut) of a stream of byte chunks: each line without its newline, at most
    LINE_MAX bytes of it kept (decoded leniently); the rest of a longer line is only counted."""
    buf, cut = bytearray(), 0
    async for chunk in stream:
        if isinstance(chunk, str):
            chunk = chunk.encode()
        start = 0
        while (i := chunk.find(b"\n", start)) >= 0:
            part = chunk[start:i]
            keep = max(LINE_MAX - len(buf), 0)
            buf += part[:keep]
            cut += len(part) - min(len(part), keep)
            yield buf.decode("utf-8", "replace"), cut
            buf, cut = bytearray(), 0
            start = i + 1
        part = chunk[start:]
        keep = max(LINE_MAX - len(buf), 0)
        buf += part[:keep]
        cut += len(part) - min(len(part), keep)
    if buf or cut:
        yield buf.decode("utf-8", "replace"), cut


class Fetch:
    """What one fetch sends, within its caps, and what it leaves out."""

    def __init__(self, max_bytes, max_total):
        self.max_bytes, self.max_total = max(max_bytes, 0), max(max_total, 0)
        self.files, self.skipped, self.more, self.total = [], [], 0, 0

    def room(self):
        return min(self.max_bytes, self.max_total - self.total)

    def skip(self, name, size, reason):
        if len(self.skipped) < SKIPPED_LISTED_MAX:
            self.skipped.append({"name": name, "size": size, "reason": reason})
        else:
            self.more += 1

    def refuse(self, name, size):
        """Whether the file is left out by its size (it is recorded as such)."""
        if size is not None and size > self.max_bytes:
            self.skip(name, size, f"over the cap of {self.max_bytes} bytes on the result files fetched from a sandbox")
        elif size is not None and size > self.max_total - self.total:
            self.skip(name, size, f"the files before it reach the cap of {self.max_total} bytes on one fetch")
        elif len(self.files) >= FETCH_FILES_MAX:
            self.skip(name, size, f"more than {FETCH_FILES_MAX} files")
        else:
            return False
        return True

    def add(self, name, data):
        if len(data) > self.room():
            self.skip(name, len(data), f"it grew over the cap of {self.room()} bytes while it was read")
            return
        self.total += len(data)
        self.files.append({"name": name, "content_b64": base64.b64encode(data).decode()})

    def reply(self):
        return {"files": self.files, "skipped": self.skipped, "skipped_more": self.more}


async def relay(tls_socket, url):
    """A local plain-TCP port relayed to the tunnel's TLS socket: the runner's readiness probe
    speaks plain HTTP to it."""
    host, port = tls_socket

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(host, port, ssl=ssl.create_default_context(), server_hostname=host)
        except OSError as exc:
            print(f"tunnel {host}:{port}: {exc!r}", file=sys.stderr)
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    local = server.sockets[0].getsockname()[1]
    return server, {"host": "127.0.0.1", "port": local, "url": url}
