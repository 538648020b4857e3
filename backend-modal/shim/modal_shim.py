#!/usr/bin/env python3
"""perf-runner's Modal shim: drives the official `modal` SDK for the backend-modal crate.

The crate embeds this file, writes it to a cache dir (content-addressed) and runs it with
`python -u` in its own process group. JSON lines (protocol 3, see backend-modal/src/protocol/):

one request   stdin: {"cmd": "check" | "prepare" | "dry_run", ...}, later maybe {"cmd": "cancel"}
              (EOF means cancel too); stdout: hello, stage, image, plan, check, error,
              terminated, cancelled. The shim exits when it is done.
a sandbox     stdin: {"seq": N, "cmd": "create" | "exec" | "stop" | "tunnel" | "fetch" |
              "terminate", ...}, one per line, the first a create; stdout: hello, stage,
              reply {seq, value} / failed {seq, error}, output {id, stream, line, cut}, exit
              {id, code}, terminated. Commands run concurrently. EOF ends it.

The shim is a thin "sandbox exec" server: it starts processes in the sandbox (each under
`setsid`, so that a stop ends its whole process group), streams their output, reports their
exits, opens the tunnel to the server's port and fetches files. It decides nothing about the
step: readiness, the warm-up rule, phase timeouts and failure codes are the runner's.

What comes out of the sandbox is bounded before it is held here (modal_streams.py): an output
line is cut at 64 KiB (the event says how many bytes were dropped), and `fetch` checks every
file's size before reading it, reads at most the caps the command names, and lists what it
left out.

Nothing but events goes to stdout: sys.stdout points at stderr, so SDK output cannot corrupt
the protocol. Whatever happens (success, error, EOF, SIGTERM/SIGINT/SIGHUP) every sandbox this
process created is terminated before it exits. The shim classifies nothing: an error is
reported as the exception's qualified class chain, its gRPC status and the phase; the crate owns
the table. The SDK objects themselves are built in modal_sdk.py, next to this file.
"""

import asyncio
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modal_sdk import (  # noqa: E402  (the SDK half of the shim, next to this file)
    BadRequest,
    apply_ops,
    base_image,
    dry_run,
    raw,
    sandbox_kwargs,
)
from modal_streams import Fetch, lines, relay  # noqa: E402  (what comes out of the sandbox)

PROTOCOL = 3
PID_WAIT_S = 10  # how long a signal waits for a process to have written its group id
_OUT = sys.stdout
sys.stdout = sys.stderr


def emit(event, **fields):
    fields["event"] = event
    try:
        _OUT.write(json.dumps(fields) + "\n")
        _OUT.flush()
    except (BrokenPipeError, OSError):
        pass  # the reader is gone; cleanup still runs (stdin EOF or SIGTERM cancels)



def qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def grpc_status(exc):
    status = exc.__dict__.get("_grpc_status")  # where modal's error wrappers keep it
    if status is None:
        try:
            import grpclib

            if isinstance(exc, grpclib.GRPCError):
                status = exc.status
        except Exception:
            status = None
    return None if status is None else getattr(status, "name", str(status))


def described(exc, phase):
    chain = [qualname(c) for c in type(exc).__mro__ if c not in (object, BaseException, Exception)]
    return {
        "class": chain[0] if chain else qualname(type(exc)),
        "classes": chain,
        "grpc_status": grpc_status(exc),
        "message": (str(exc) or repr(exc))[:8000],
        "phase": phase,
    }


def report(exc, phase):
    emit("error", **described(exc, phase))


class State:
    """What a one-request run created and must clean up (an image build creates nothing)."""

    def __init__(self):
        self.phase = "shim"


def upload(modal, up):
    vol = modal.Volume.from_name(up["volume"], create_if_missing=True)
    try:
        if vol.listdir(up["remote_path"]):
            emit("stage", stage="upload", detail=f"{up['remote_path']} is already in {up['volume']}")
            return
    except (modal.exception.NotFoundError, FileNotFoundError):
        pass
    emit("stage", stage="upload", detail=f"uploading {up['local_path']} to {up['volume']}:{up['remote_path']}")
    with vol.batch_upload(force=True) as batch:
        batch.put_file(up["local_path"], up["remote_path"])


async def prepare(modal, req, st):
    app = await modal.App.lookup.aio(req["app"], create_if_missing=True)
    st.phase = "image"
    image = apply_ops(base_image(modal, req["image"]["base"]), req["image"]["ops"])
    emit("stage", stage="image", detail="building the engine image")
    with modal.enable_output():
        await image.build.aio(app)
        base_id = image.object_id
        if req.get("patch"):
            st.phase = "patch"
            emit("stage", stage="patch", detail="building the agent patch layer")
            image = apply_ops(image, req["patch"])
            await image.build.aio(app)
    emit("image", image_id=image.object_id, base_image_id=base_id, reused=bool(getattr(raw(image), "_cache_hit", False)))


async def dispatch(req, st):
    import modal

    cmd = req.get("cmd")
    if cmd == "check":
        emit("check", python=sys.version.split()[0], modal_version=modal.__version__)
    elif cmd == "dry_run":
        emit("plan", plan=dry_run(modal, req))
    elif cmd == "prepare":
        await prepare(modal, req, st)
    else:
        raise BadRequest(f"unknown command {cmd!r}")


async def one_request(req, reader, cancel):
    async def watch():
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                if json.loads(line).get("cmd") == "cancel":
                    break
            except (ValueError, AttributeError):
                continue
        cancel.set()

    st = State()
    watcher = asyncio.ensure_future(watch())
    work = asyncio.ensure_future(dispatch(req, st))
    stop = asyncio.ensure_future(cancel.wait())
    code = 0
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            exc = work.exception()
            if exc is not None:
                report(exc, st.phase)
                code = 1
        else:
            work.cancel()
            await asyncio.wait({work}, timeout=10)
            code = 130
    finally:
        watcher.cancel()
        stop.cancel()
    if code == 130:
        emit("cancelled")
    return code


# ---------------------------------------------------------------- a sandbox

PIDS = "/tmp/.perf-runner-pids"  # in the sandbox: each process's group id, by its id


class Proc:
    def __init__(self, handle):
        self.handle = handle
        self.done = asyncio.Event()


class Box:
    """The attempt's sandbox and what runs in it."""

    def __init__(self, modal):
        self.modal = modal
        self.sandbox = None
        self.create_task = None
        self.started = None
        self.kwargs = {}
        self.procs = {}
        self.relays = {}
        self.relay_lock = asyncio.Lock()

    async def create(self, req, where):
        modal = self.modal
        app = await modal.App.lookup.aio(req["app"], create_if_missing=True)
        where[0] = "upload"
        for up in req["uploads"]:
            await asyncio.to_thread(upload, modal, up)
        where[0] = "image"
        image = apply_ops(base_image(modal, req["image"]["base"]), req["image"]["ops"])
        if req["image"]["ops"]:
            emit("stage", stage="image", detail="building the serving client's layer")
            await image.build.aio(app)
        where[0] = "sandbox"
        spec = req["sandbox"]
        emit("stage", stage="sandbox", detail=f"creating a sandbox with {spec['gpu']}")
        self.kwargs = sandbox_kwargs(modal, app, image, spec)
        self.create_task = asyncio.ensure_future(modal.Sandbox.create.aio("sleep", "infinity", **self.kwargs))
        self.sandbox = await asyncio.shield(self.create_task)
        self.started = time.monotonic()
        emit("stage", stage="sandbox", detail="created", sandbox_id=self.sandbox.object_id)
        return {"sandbox_id": self.sandbox.object_id}

    def need(self):
        if self.sandbox is None:
            raise BadRequest("no sandbox yet: the first command must be a create")
        return self.sandbox

    async def exec(self, cmd):
        sb, pid = self.need(), cmd["id"]
        if pid in self.procs or "/" in pid:
            raise BadRequest(f"process id {pid!r} is taken or not plain")
        # `setsid`: its own process group, whose id is kept for stop.
        script = f'mkdir -p {PIDS} && echo $$ > {PIDS}/{pid} && exec "$@"'
        argv = ["setsid", "--wait", "sh", "-c", script, "sh", *cmd["argv"]]
        extra = {"env": self.kwargs.get("env"), "secrets": self.kwargs.get("secrets")}
        if cmd.get("workdir"):
            extra["workdir"] = cmd["workdir"]
        # Raw chunks, split into lines here: the SDK's own line buffering holds a line whole.
        handle = await sb.exec.aio(*argv, text=False, bufsize=-1, **extra)
        proc = self.procs[pid] = Proc(handle)
        asyncio.ensure_future(self.follow(pid, proc))
        return {}

    async def follow(self, pid, proc):
        async def pump(stream, name):
            async for line, cut in lines(stream):
                emit("output", id=pid, stream=name, line=line, cut=cut)

        pumps = [
            asyncio.ensure_future(pump(proc.handle.stdout, "stdout")),
            asyncio.ensure_future(pump(proc.handle.stderr, "stderr")),
        ]
        try:
            code = await proc.handle.wait.aio()
            await asyncio.wait(pumps, timeout=30)
            emit("exit", id=pid, code=code)
        except Exception as exc:  # the sandbox ended under it, the connection broke …
            emit("exit", id=pid, code=None, error=described(exc, "exec"))
        finally:
            for p in pumps:
                p.cancel()
            proc.done.set()

    async def signal(self, pid, sig):
        # `exec` replies once Modal took the process, maybe before its `sh -c` wrote the group
        # id: wait for the file (bounded) unless the process has ended.
        proc = self.procs.get(pid)
        tries = 0 if proc is None or proc.done.is_set() else PID_WAIT_S * 10
        # `kill -SIG -PGID`: the form dash, bash and busybox all read as a group (not `--`).
        script = (
            f'f={PIDS}/{pid}; i=0; while [ ! -s "$f" ] && [ "$i" -lt {tries} ]; do sleep 0.1; i=$((i+1)); done; '
            f'g=$(cat "$f" 2>/dev/null) && kill -{sig} -"$g" 2>/dev/null; true'
        )
        handle = await self.need().exec.aio("sh", "-c", script)
        await handle.wait.aio()

    async def stop(self, cmd):
        pid = cmd["id"]
        proc = self.procs.get(pid)
        if proc is None:
            return {}
        if not proc.done.is_set():
            await self.signal(pid, "TERM")
            try:
                await asyncio.wait_for(proc.done.wait(), max(float(cmd.get("grace_s") or 0), 0.0))
            except asyncio.TimeoutError:
                pass
        # Whatever of its group is left (or all of it, past the grace).
        await self.signal(pid, "KILL")
        await asyncio.wait_for(proc.done.wait(), 60)
        return {}

    async def tunnel(self, cmd):
        port = int(cmd["port"])
        async with self.relay_lock:
            if port not in self.relays:
                tunnels = await self.need().tunnels.aio(timeout=5)
                if port not in tunnels:
                    raise BadRequest(f"the sandbox has no tunnel for port {port}: {sorted(tunnels)}")
                t = tunnels[port]
                self.relays[port] = await relay(t.tls_socket, t.url)
        return self.relays[port][1]

    async def fetch(self, cmd):
        sb = self.need()
        try:
            entries = await sb.filesystem.list_files.aio(cmd["dir"])
        except self.modal.exception.SandboxFilesystemNotFoundError:
            return {"files": [], "skipped": []}
        fetch = Fetch(int(cmd["max_bytes"]), int(cmd["max_total_bytes"]))
        for e in sorted(entries, key=lambda e: e.name):
            if not e.is_file():
                continue
            if fetch.refuse(e.name, e.size):
                continue
            # `head -c`: what is read is bounded in the sandbox too, even if the file grew.
            handle = await sb.exec.aio("head", "-c", str(fetch.room() + 1), e.path, text=False, bufsize=-1)
            data = bytearray()
            async for chunk in handle.stdout:
                data += chunk if isinstance(chunk, bytes) else chunk.encode()
                if len(data) > fetch.room():
                    break
            code = await handle.wait.aio()
            if code != 0 and len(data) <= fetch.room():
                fetch.skip(e.name, e.size, f"reading it failed (head exited {code})")
                continue
            fetch.add(e.name, bytes(data))
        return fetch.reply()

    async def terminate(self, wait_create=120):
        """Terminate the sandbox; one still being created is waited for (up to `wait_create`
        seconds) and terminated then."""
        for server, _ in self.relays.values():
            server.close()
        self.relays.clear()
        if self.sandbox is None and self.create_task is not None and wait_create:
            try:
                self.sandbox = await asyncio.wait_for(asyncio.shield(self.create_task), wait_create)
                self.started = time.monotonic()
            except BaseException:
                self.sandbox = None
        sb, self.sandbox, self.create_task = self.sandbox, None, None
        if sb is None:
            return {"seconds": None}
        try:
            await asyncio.wait_for(sb.terminate.aio(), 60)
        except BaseException as exc:
            print(f"terminating {sb.object_id} failed: {exc!r}", file=sys.stderr)
        seconds = time.monotonic() - (self.started or time.monotonic())
        emit("terminated", sandbox_id=sb.object_id, seconds=seconds)
        return {"seconds": seconds}


async def command(box, cmd):
    seq, name = cmd.get("seq"), cmd.get("cmd")
    where = [{"create": "sandbox", "exec": "exec", "stop": "stop", "tunnel": "tunnel", "fetch": "fetch"}.get(name, "shim")]
    try:
        if name == "create":
            value = await box.create(cmd, where)
        elif name == "exec":
            value = await box.exec(cmd)
        elif name == "stop":
            value = await box.stop(cmd)
        elif name == "tunnel":
            value = await box.tunnel(cmd)
        elif name == "fetch":
            value = await box.fetch(cmd)
        elif name == "terminate":
            value = await box.terminate()
        else:
            raise BadRequest(f"unknown command {name!r}")
        emit("reply", seq=seq, value=value)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        emit("failed", seq=seq, error=described(exc, where[0]))


async def sandbox_loop(first, reader, cancel):
    import modal

    box = Box(modal)
    tasks = set()

    def start(cmd):
        t = asyncio.ensure_future(command(box, cmd))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    start(first)

    async def read():
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            if isinstance(cmd, dict):
                start(cmd)

    reading = asyncio.ensure_future(read())
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({reading, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in list(tasks):
            t.cancel()
        await box.terminate()
        reading.cancel()
        stop.cancel()
    return 0


async def amain():
    loop = asyncio.get_running_loop()
    cancel = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, cancel.set)
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    first = await reader.readline()
    emit("hello", protocol=PROTOCOL)
    try:
        req = json.loads(first)
        if not isinstance(req, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        report(BadRequest(f"the request line is not JSON: {exc}"), "shim")
        code = 2
    else:
        if req.get("cmd") == "create":
            code = await sandbox_loop(req, reader, cancel)
        else:
            code = await one_request(req, reader, cancel)
    # Everything this process created is gone; do not wait for SDK worker threads (an upload
    # interrupted by a cancel) before exiting.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
