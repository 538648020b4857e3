"""Runs the REAL shim (shim/modal_shim.py) against the REAL `modal` package with only its remote
calls replaced, for tests: `App.lookup` and `Sandbox.create` are stand-ins, and the stand-in
sandbox is this machine — `exec` runs the shim's argv (its `setsid --wait sh -c …` wrapper
included) as real processes, `tunnels()` returns the SDK's own `Tunnel` for a local TLS
endpoint in front of the server's port (self-signed, trusted through the `ssl` module), and
`filesystem` reads local folders through the SDK's `FileInfo`. Images, volumes, secrets and the
exceptions are the SDK's own.

A per-test wrapper sets SCENARIO, STATE_DIR and SHIM and execs this file. The shim's folder of
process-group ids lies under STATE_DIR/tmp. Markers in STATE_DIR: `creating`, `created` (a
sandbox exists), `terminated` (the shim terminated it), `tls` (a connection came through the
tunnel); `create.json` and
`execs.jsonl` record what the shim asked for. Scenario `late_start`: the server's process
starts 4 s after its exec returned. Processes carry the sandbox's tags in their
environment (`PERF_RUNNER_TAG_<KEY>`), a fake `nvidia-smi` is first on their PATH.
"""

import asyncio
import json
import os
import re
import runpy
import ssl
import subprocess

import grpclib
import modal
import modal.exception
from modal._tunnel import Tunnel
from modal.types import FileInfo, FileType

SCENARIO = globals().get("SCENARIO", "ok")
STATE_DIR = globals().get("STATE_DIR", ".")
SHIM = globals()["SHIM"]
TMP = os.path.join(STATE_DIR, "tmp")
CERT, KEY = os.path.join(STATE_DIR, "cert.pem"), os.path.join(STATE_DIR, "key.pem")


def mark(name, text=""):
    with open(os.path.join(STATE_DIR, name), "a") as f:
        f.write(text + "\n")


class Aio:
    """A stand-in for a synchronicity method: only `.aio` is allowed (the shim is async)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        raise RuntimeError("the shim made a blocking call")

    async def aio(self, *args, **kwargs):
        return await self.fn(*args, **kwargs)


class Stream:
    """A process's stdout or stderr as the SDK yields it: with `bufsize=1` whole lines, with
    `bufsize=-1` chunks as they come (a line of any length never waits for its newline);
    bytes with `text=False`."""

    def __init__(self, started, name, text, bufsize):
        self.started, self.name, self.text, self.bufsize = started, name, text, bufsize

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        stream = getattr(await self.started, self.name)
        while True:
            raw = await (stream.readline() if self.bufsize == 1 else stream.read(65536))
            if not raw:
                return
            yield raw.decode("utf-8", "replace") if self.text else raw


class Proc:
    """A process the stand-in sandbox runs; `started` resolves to it once it has started,
    which may be after `exec` returned (as on Modal)."""

    def __init__(self, started, text, bufsize):
        self.started = started
        self.stdout = Stream(started, "stdout", text, bufsize)
        self.stderr = Stream(started, "stderr", text, bufsize)
        self.wait = Aio(self._wait)
        self.poll = Aio(self._poll)

    async def _wait(self):
        return await (await self.started).wait()

    async def _poll(self):
        return (await self.started).returncode if self.started.done() else None


class Filesystem:
    def __init__(self):
        self.list_files = Aio(self._list)
        self.read_bytes = Aio(self._read)

    async def _list(self, path):
        if not os.path.isdir(path):
            raise modal.exception.SandboxFilesystemNotFoundError(path)
        out = []
        for n in sorted(os.listdir(path)):
            full = os.path.join(path, n)
            kind = FileType.DIRECTORY if os.path.isdir(full) else FileType.FILE
            st = os.stat(full)
            out.append(FileInfo(n, full, kind, st.st_size, st.st_mode, "", "", "", st.st_mtime, None))
        return out

    async def _read(self, path):
        with open(path, "rb") as f:
            return f.read()


class Sandbox:
    object_id = "sb-harness"

    def __init__(self, kwargs):
        self.kwargs = kwargs
        gpu = kwargs["gpu"]
        count = int(gpu.split(":")[1]) if ":" in gpu else 1
        bin_dir = os.path.join(STATE_DIR, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        with open(os.path.join(bin_dir, "nvidia-smi"), "w") as f:
            f.write("#!/bin/sh\n" + "echo 'NVIDIA H100 80GB HBM3'\n" * count)
        os.chmod(os.path.join(bin_dir, "nvidia-smi"), 0o755)
        self.exec = Aio(self._exec)
        self.terminate = Aio(self._terminate)
        self.tunnels = Aio(self._tunnels)
        self.filesystem = Filesystem()
        self.tls = None

    async def _terminate(self):
        mark("terminated")

    async def _exec(self, *argv, **kwargs):
        with open(os.path.join(STATE_DIR, "execs.jsonl"), "a") as f:
            f.write(json.dumps({"argv": argv, "env": sorted(kwargs.get("env") or {}), "secrets": len(kwargs.get("secrets") or [])}) + "\n")
        if SCENARIO == "exec_timeout" and any("latency" in a for a in argv):
            raise modal.exception.SandboxTimeoutError("Sandbox exceeded its timeout")
        env = dict(os.environ)
        env.update(kwargs.get("env") or {})
        for k, v in (self.kwargs.get("tags") or {}).items():
            env["PERF_RUNNER_TAG_" + re.sub(r"[^A-Z0-9]", "_", k.upper())] = v
        env["PATH"] = os.path.join(STATE_DIR, "bin") + os.pathsep + env.get("PATH", "")
        argv = [a.replace("/tmp/.perf-runner-pids", TMP + "/.perf-runner-pids") for a in argv]
        workdir = kwargs.get("workdir")
        # `late_start`: Modal took the process, it runs a moment later (a server's exec
        # returns first, then its `sh -c` writes the group id), later than a stop's grace.
        late = SCENARIO == "late_start" and any("api_server" in a for a in argv)

        async def start():
            if late:
                await asyncio.sleep(4)
            return await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=workdir if workdir and os.path.isdir(workdir) else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )

        started = asyncio.ensure_future(start())
        return Proc(started, kwargs.get("text", True), kwargs.get("bufsize", -1))

    async def _tunnels(self, timeout=50):
        (port,) = self.kwargs["encrypted_ports"]
        if self.tls is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(CERT, KEY)

            async def pipe(r, w):
                try:
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                except OSError:
                    pass
                finally:
                    w.close()

            async def handle(r, w):
                mark("tls")
                try:
                    ur, uw = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    w.close()
                    return
                await asyncio.gather(pipe(r, uw), pipe(ur, w))

            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
            self.tls = server.sockets[0].getsockname()[1]
        return {port: Tunnel("localhost", self.tls, "", 0)}


async def lookup(name, create_if_missing=False):
    return object()


async def create(*args, **kwargs):
    with open(os.path.join(STATE_DIR, "create.json"), "w") as f:
        json.dump(
            {
                "args": args,
                "gpu": kwargs["gpu"],
                "timeout": kwargs["timeout"],
                "volumes": {p: type(v).__name__ for p, v in kwargs["volumes"].items()},
                "secrets": [type(s).__name__ for s in kwargs["secrets"]],
                "image": type(kwargs["image"]).__name__,
                "env": kwargs["env"],
                "encrypted_ports": kwargs.get("encrypted_ports"),
            },
            f,
        )
    if SCENARIO == "unavailable":
        exc = modal.exception.ServiceError("SandboxCreate: upstream connect error")
        exc.status = grpclib.Status.UNAVAILABLE  # what Modal's middleware sets
        raise exc
    if SCENARIO == "auth":
        exc = modal.exception.AuthError("Token ID is malformed")
        exc.status = grpclib.Status.UNAUTHENTICATED
        raise exc
    if SCENARIO == "slow_create":
        mark("creating")
        await asyncio.sleep(4)
    mark("created")
    return Sandbox(kwargs)


os.makedirs(TMP, exist_ok=True)
subprocess.run(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEY, "-out", CERT, "-days", "1",
     "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
    check=True,
    capture_output=True,
)
_default_context = ssl.create_default_context


def _trusting_context(*args, **kwargs):
    ctx = _default_context(*args, **kwargs)
    ctx.load_verify_locations(CERT)
    return ctx


ssl.create_default_context = _trusting_context
modal.App.lookup = Aio(lookup)
modal.Sandbox.create = Aio(create)
runpy.run_path(SHIM, run_name="__main__")
