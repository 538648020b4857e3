#!/usr/bin/env python3
"""perf-runner's Modal shim: drives the official `modal` SDK for the backend-modal crate.

The crate embeds this file, writes it to a cache dir (content-addressed) and runs it with
`python -u`, one process per request, in its own process group. JSON lines:

stdin   one request: {"cmd": "check" | "prepare" | "run" | "dry_run", ...}; later
        {"cmd": "cancel"}. EOF on stdin means cancel too.
stdout  one event per line: hello, stage, log, gpu, version, exit, result_file, image, plan,
        check, terminated, cancelled, error (see backend-modal/src/protocol.rs). Nothing else
        goes there: sys.stdout points at stderr, so SDK output cannot corrupt the protocol.

Whatever happens (success, error, cancel, SIGTERM/SIGINT/SIGHUP) every sandbox this process
created is terminated before it exits. The shim classifies nothing: an error is reported as
the exception's qualified class chain, its gRPC status and the phase; the crate owns the table.
The SDK objects themselves are built in modal_sdk.py, next to this file.
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
    MissingScript,
    PhaseTimeout,
    ServerExited,
    ServerNotReady,
    apply_ops,
    base_image,
    dry_run,
    raw,
    sandbox_kwargs,
)

PROTOCOL = 1
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


def report(exc, phase):
    chain = [qualname(c) for c in type(exc).__mro__ if c not in (object, BaseException, Exception)]
    emit(
        "error",
        **{
            "class": chain[0] if chain else qualname(type(exc)),
            "classes": chain,
            "grpc_status": grpc_status(exc),
            "message": (str(exc) or repr(exc))[:8000],
            "phase": phase,
        },
    )


class State:
    """What this process created and must clean up."""

    def __init__(self):
        self.phase = "shim"
        self.sandbox = None
        self.create_task = None
        self.started = None


async def exec_capture(sb, argv, timeout=None):
    proc = await sb.exec.aio(*argv, timeout=timeout)
    out, err = await asyncio.gather(proc.stdout.read.aio(), proc.stderr.read.aio())
    code = await proc.wait.aio()
    if err.strip():
        print(f"[{argv[0]}] {err.strip()}", file=sys.stderr)
    return code, out


async def pump(stream, name):
    async for line in stream:
        emit("log", stream=name, line=line.rstrip("\n"))


async def drain(tasks, seconds):
    if tasks:
        await asyncio.wait(tasks, timeout=seconds)


async def start_server(sb, server, workdir, st_exec):
    proc = await sb.exec.aio(*server["argv"], bufsize=1, workdir=workdir, **st_exec)
    pumps = [asyncio.ensure_future(pump(proc.stdout, "server")), asyncio.ensure_future(pump(proc.stderr, "server"))]
    deadline = time.monotonic() + float(server["ready_timeout_s"])
    while True:
        code = await proc.poll.aio()
        if code is not None:
            await drain(pumps, 10)
            raise ServerExited(f"the server exited with code {code} before it was ready")
        if time.monotonic() >= deadline:
            raise ServerNotReady(f"the server was not ready within {server['ready_timeout_s']} s")
        probe, _ = await exec_capture(sb, server["probe_argv"], timeout=30)
        if probe == 0 and await proc.poll.aio() is None:
            return pumps
        await asyncio.sleep(float(server["poll_s"]))


async def run_process(sb, spec, prefix, workdir, st_exec):
    started = time.monotonic()
    limit = float(spec["timeout_s"])
    proc = await sb.exec.aio(*spec["argv"], bufsize=1, workdir=workdir, timeout=int(limit) + 60, **st_exec)
    pumps = [
        asyncio.ensure_future(pump(proc.stdout, f"{prefix}_stdout")),
        asyncio.ensure_future(pump(proc.stderr, f"{prefix}_stderr")),
    ]
    try:
        code = await asyncio.wait_for(proc.wait.aio(), timeout=limit)
    except asyncio.TimeoutError:
        raise PhaseTimeout(f"the {prefix} ran past its deadline ({spec['timeout_s']} s)") from None
    await drain(pumps, 30)
    seconds = time.monotonic() - started
    if code == -1 and seconds >= limit:
        raise PhaseTimeout(f"the {prefix} ran past its deadline ({spec['timeout_s']} s)")
    emit("exit", code=code, phase=prefix, seconds=seconds)
    return code


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


async def run(modal, req, st):
    app = await modal.App.lookup.aio(req["app"], create_if_missing=True)
    st.phase = "upload"
    for up in req["uploads"]:
        await asyncio.to_thread(upload, modal, up)
    st.phase = "image"
    image = apply_ops(base_image(modal, req["image"]["base"]), req["image"]["ops"])
    if req["image"]["ops"]:
        emit("stage", stage="image", detail="building the serving client's layer")
        await image.build.aio(app)
    st.phase = "sandbox"
    spec = req["sandbox"]
    emit("stage", stage="sandbox", detail=f"creating a sandbox with {spec['gpu']}")
    kwargs = sandbox_kwargs(modal, app, image, spec)
    st.create_task = asyncio.ensure_future(modal.Sandbox.create.aio("sleep", "infinity", **kwargs))
    st.sandbox = await asyncio.shield(st.create_task)
    st.started = time.monotonic()
    emit("stage", stage="sandbox", detail="created", sandbox_id=st.sandbox.object_id)
    sb = st.sandbox
    st.phase = "gpu"
    _, out = await exec_capture(sb, req["gpu_query"], timeout=60)
    emit("gpu", names=[line.strip() for line in out.splitlines() if line.strip()])
    code, out = await exec_capture(sb, req["version_query"], timeout=120)
    emit("version", engine_version=out.strip() if code == 0 and out.strip() else None)
    for path in req["require_files"]:
        code, _ = await exec_capture(sb, ["test", "-f", path], timeout=60)
        if code != 0:
            raise MissingScript(f"{path} does not exist: the build's source has no such script")
    workdir = spec["workdir"]
    # The sandbox's env and secrets, given to each process again (explicit beats inherited).
    st_exec = {"env": kwargs["env"], "secrets": kwargs["secrets"]}
    await exec_capture(sb, ["mkdir", "-p", workdir, req["result_dir"]], timeout=60)
    server_pumps = []
    if req.get("server"):
        st.phase = "server"
        emit("stage", stage="server", detail="starting; waiting for /health")
        server_pumps = await start_server(sb, req["server"], workdir, st_exec)
        emit("stage", stage="server", detail="ready")
    if req.get("warmup"):
        st.phase = "warmup"
        emit("stage", stage="warmup", detail="warming up")
        if await run_process(sb, req["warmup"], "warmup", workdir, st_exec) != 0:
            return
    st.phase = "client"
    emit("stage", stage="client", detail="running the benchmark client")
    await run_process(sb, req["client"], "client", workdir, st_exec)
    st.phase = "collect"
    code, out = await exec_capture(sb, req["collect_argv"], timeout=300)
    if code == 0 and out.strip():
        for name, content in json.loads(out).items():
            emit("result_file", name=name, content_b64=content)
    for task in server_pumps:
        task.cancel()


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
    elif cmd == "run":
        await run(modal, req, st)
    else:
        raise BadRequest(f"unknown command {cmd!r}")


async def cleanup(st):
    if st.sandbox is None and st.create_task is not None:
        try:
            st.sandbox = await asyncio.wait_for(st.create_task, 120)
            st.started = time.monotonic()
        except BaseException:
            st.sandbox = None
    if st.sandbox is not None:
        try:
            await asyncio.wait_for(st.sandbox.terminate.aio(), 60)
        except BaseException as exc:
            print(f"terminating {st.sandbox.object_id} failed: {exc!r}", file=sys.stderr)
        emit("terminated", sandbox_id=st.sandbox.object_id, seconds=time.monotonic() - (st.started or 0))


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
    except ValueError as exc:
        report(BadRequest(f"the request line is not JSON: {exc}"), "shim")
        return 2

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
        await cleanup(st)
        watcher.cancel()
        stop.cancel()
    if code == 130:
        emit("cancelled")
    # Everything this process created is gone; do not wait for SDK worker threads (an upload
    # interrupted by a cancel) before exiting.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(asyncio.run(amain()))
