"""A stand-in for the Modal shim and Modal's servers, for tests only: it speaks the same JSON
lines (protocol 3) but contacts nobody. Its "sandbox" is this machine: `exec` runs real
processes (each in a process group of its own, its output streamed line by line, a line cut
at 64 KiB as the real shim cuts it), a `stop` signals the group (TERM, grace, KILL) and fails
as the real one does when the process does not end, the tunnel is 127.0.0.1 and the server's
own port, `fetch` reads a local folder within the caps it is sent (sizes checked first), and
`terminate` kills every group it started. Scenario `old_protocol` announces protocol 2.

A per-test wrapper sets SCENARIO and STATE_DIR and execs this file; the folder above STATE_DIR
is the test's own, and only mounts and work folders inside it are made. Records in STATE_DIR:
requests.jsonl (every request and command), pid (this process), markers `created` and
`terminated`, and procs/<id>.pid. Every process it starts carries the sandbox's tags in its
environment (`PERF_RUNNER_TAG_<KEY>=value`), so that a leftover finder can find it by the run's
label; a fake `nvidia-smi` first on its PATH names the GPUs the sandbox was given.
"""

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

SCENARIO = globals().get("SCENARIO", "ok")
STATE_DIR = globals().get("STATE_DIR", ".")
ROOT = os.path.dirname(os.path.abspath(STATE_DIR))
NAMES = {"H100": "NVIDIA H100 80GB HBM3", "H200": "NVIDIA H200", "A100-80GB": "NVIDIA A100-SXM4-80GB"}
OUT = threading.Lock()
PROTOCOL = 2 if SCENARIO == "old_protocol" else 3
LINE_MAX = 64 * 1024


def emit(event, **fields):
    fields["event"] = event
    with OUT:
        try:
            sys.stdout.write(json.dumps(fields) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass


def mark(name):
    with open(os.path.join(STATE_DIR, name), "a") as f:
        f.write(f"{os.getpid()}\n")


def record(req):
    with open(os.path.join(STATE_DIR, "requests.jsonl"), "a") as f:
        f.write(json.dumps(req) + "\n")


def error(cls, bases=(), grpc=None, message="", phase=None):
    return {"class": cls, "classes": [cls, *bases], "grpc_status": grpc, "message": message, "phase": phase}


def inside(path):
    return os.path.abspath(path).startswith(ROOT + os.sep)


class Raised(Exception):
    def __init__(self, error):
        self.error = error


class Box:
    def __init__(self):
        self.lock = threading.Lock()
        self.spec = None
        self.started = None
        self.procs = {}

    def create(self, cmd):
        spec = cmd["sandbox"]
        if SCENARIO == "unavailable":
            raise Raised(error("modal.exception.ServiceError", ["modal.exception.Error"], "UNAVAILABLE", "Sandbox create: 503", "sandbox"))
        if SCENARIO == "auth":
            raise Raised(error("modal.exception.AuthError", ["modal.exception.Error"], "UNAUTHENTICATED", "Token missing", "sandbox"))
        if SCENARIO == "slow_create":
            mark("creating")
            time.sleep(30)
        for up in cmd["uploads"]:
            dest = os.path.join(STATE_DIR, "volumes", up["volume"], up["remote_path"].lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(up["local_path"], dest)
        for path, name in spec["volumes"].items():
            vol = os.path.join(STATE_DIR, "volumes", name)
            os.makedirs(vol, exist_ok=True)
            if inside(path) and not os.path.lexists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(vol, path)
        if inside(spec["workdir"]):
            os.makedirs(spec["workdir"], exist_ok=True)
        kind, _, count = spec["gpu"].partition(":")
        kind, count = kind.rstrip("!"), int(count or 1)
        name = "NVIDIA H200" if SCENARIO == "gpu_mismatch" else NAMES.get(kind, f"NVIDIA {kind}")
        bin_dir = os.path.join(STATE_DIR, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        smi = os.path.join(bin_dir, "nvidia-smi")
        with open(smi, "w") as f:
            f.write("#!/bin/sh\n" + "".join(f"echo '{name}'\n" for _ in range(count)))
        os.chmod(smi, 0o755)
        self.spec, self.started = spec, time.monotonic()
        mark("created")
        sandbox_id = f"sb-fake-{os.getpid()}"
        emit("stage", stage="sandbox", detail="created", sandbox_id=sandbox_id)
        return {"sandbox_id": sandbox_id}

    def env(self):
        env = dict(os.environ)
        env.update(self.spec["env"])
        for k, v in self.spec["tags"].items():
            env["PERF_RUNNER_TAG_" + re.sub(r"[^A-Z0-9]", "_", k.upper())] = v
        env["PATH"] = os.path.join(STATE_DIR, "bin") + os.pathsep + env.get("PATH", "")
        return env

    def exec(self, cmd):
        if self.spec is None:
            raise Raised(error("perf_runner.BadRequest", [], None, "no sandbox yet", "exec"))
        pid = cmd["id"]
        workdir = cmd.get("workdir")
        try:
            p = subprocess.Popen(
                cmd["argv"],
                cwd=workdir if workdir and os.path.isdir(workdir) else None,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
            )
        except OSError as exc:
            # Modal runs the process and it fails; so does this.
            done = threading.Event()
            done.set()
            with self.lock:
                self.procs[pid] = (None, done)
            emit("output", id=pid, stream="stderr", line=f"exec: {exc}")
            emit("exit", id=pid, code=127)
            return {}
        os.makedirs(os.path.join(STATE_DIR, "procs"), exist_ok=True)
        with open(os.path.join(STATE_DIR, "procs", f"{pid}.pid"), "w") as f:
            f.write(str(p.pid))
        done = threading.Event()
        with self.lock:
            self.procs[pid] = (p, done)
        threading.Thread(target=self.follow, args=(pid, p, done), daemon=True).start()
        return {}

    def follow(self, pid, p, done):
        def pump(stream, name):
            # At most LINE_MAX + 1 bytes at a time: a longer line is cut, the rest counted.
            head, cut = None, 0
            for raw in iter(lambda: stream.readline(LINE_MAX + 1), b""):
                whole = raw.endswith(b"\n")
                part = raw[:-1] if whole else raw
                if head is None:
                    head, cut = part[:LINE_MAX], len(part) - len(part[:LINE_MAX])
                else:
                    cut += len(part)
                if whole:
                    emit("output", id=pid, stream=name, line=head.decode("utf-8", "replace"), cut=cut)
                    head, cut = None, 0
            if head is not None:
                emit("output", id=pid, stream=name, line=head.decode("utf-8", "replace"), cut=cut)

        readers = [threading.Thread(target=pump, args=(p.stdout, "stdout")), threading.Thread(target=pump, args=(p.stderr, "stderr"))]
        for r in readers:
            r.start()
        code = p.wait()
        for r in readers:
            r.join(timeout=30)
        if SCENARIO == "sandbox_timeout" and pid.startswith("client"):
            emit("exit", id=pid, code=None, error=error("modal.exception.SandboxTimeoutError", ["modal.exception.TimeoutError", "modal.exception.Error"], None, "Sandbox timed out", "exec"))
        elif code < 0:
            emit("exit", id=pid, code=None, signal=-code)
        else:
            emit("exit", id=pid, code=code)
        done.set()

    def signal(self, p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, cmd):
        with self.lock:
            p, done = self.procs.get(cmd["id"], (None, None))
        if p is None:
            return {}
        if not done.is_set():
            self.signal(p, signal.SIGTERM)
            done.wait(max(float(cmd.get("grace_s") or 0), 0.0))
        self.signal(p, signal.SIGKILL)
        if not done.wait(60):
            # What the real shim's `asyncio.wait_for` raises.
            raise Raised(error("builtins.TimeoutError", ["builtins.OSError"], None, "", "stop"))
        return {}

    def tunnel(self, cmd):
        port = int(cmd["port"])
        return {"host": "127.0.0.1", "port": port, "url": f"http://127.0.0.1:{port}"}

    def fetch(self, cmd):
        d = cmd["dir"]
        cap, total_cap = int(cmd["max_bytes"]), int(cmd["max_total_bytes"])
        files, skipped, total = [], [], 0
        if os.path.isdir(d):
            for n in sorted(os.listdir(d)):
                path = os.path.join(d, n)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                size = os.stat(path).st_size
                if size > cap:
                    skipped.append({"name": n, "size": size, "reason": f"over the cap of {cap} bytes on the result files fetched from a sandbox"})
                    continue
                if size > total_cap - total:
                    skipped.append({"name": n, "size": size, "reason": f"the files before it reach the cap of {total_cap} bytes on one fetch"})
                    continue
                with open(path, "rb") as f:
                    data = f.read(total_cap - total + 1)
                if len(data) > total_cap - total:
                    skipped.append({"name": n, "size": len(data), "reason": "it grew over the cap while it was read"})
                    continue
                total += len(data)
                files.append({"name": n, "content_b64": base64.b64encode(data).decode()})
        if SCENARIO == "escape":
            body = base64.b64encode(b"{}").decode()
            files.append({"name": "../escape.json", "content_b64": body})
        if SCENARIO == "huge_reply":
            # A shim that ignores the caps: a reply line over what the runner reads.
            files.append({"name": "huge.json", "content_b64": "A" * (cap * 2 + (9 << 20))})
        return {"files": files, "skipped": skipped, "skipped_more": 0}

    def terminate(self):
        with self.lock:
            procs, self.procs = list(self.procs.values()), {}
            spec, self.spec = self.spec, None
        for p, done in procs:
            if p is not None:
                self.signal(p, signal.SIGKILL)
        for _, done in procs:
            done.wait(30)
        if spec is None:
            return {"seconds": None}
        mark("terminated")
        seconds = time.monotonic() - self.started
        emit("terminated", sandbox_id=f"sb-fake-{os.getpid()}", seconds=seconds)
        return {"seconds": seconds}


def command(box, cmd):
    name, seq = cmd.get("cmd"), cmd.get("seq")
    try:
        handler = {"create": box.create, "exec": box.exec, "stop": box.stop, "tunnel": box.tunnel, "fetch": box.fetch}.get(name)
        if name == "terminate":
            value = box.terminate()
        elif handler is None:
            raise Raised(error("perf_runner.BadRequest", [], None, f"unknown command {name!r}", "shim"))
        else:
            value = handler(cmd)
        emit("reply", seq=seq, value=value)
    except Raised as exc:
        emit("failed", seq=seq, error=exc.error)


def sandbox(first):
    box = Box()
    ending = threading.Event()
    if SCENARIO == "ignore_cancel":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: ending.set())

    def run(cmd):
        record(cmd)
        command(box, cmd)

    threading.Thread(target=run, args=(first,), daemon=True).start()

    def read():
        for line in sys.stdin:
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            threading.Thread(target=run, args=(cmd,), daemon=True).start()
        ending.set()

    threading.Thread(target=read, daemon=True).start()
    while not ending.wait(0.05):
        pass
    if SCENARIO == "ignore_cancel":
        while True:
            time.sleep(0.1)
    box.terminate()
    sys.exit(0)


def prepare(req):
    base = req["image"]["base"]
    if SCENARIO == "first_build_fails" and base["kind"] == "debian_slim":
        return emit("error", **error("modal.exception.ImageBuildError", ["modal.exception.RemoteError"], None, "Image build for im-1 failed", "image"))
    if SCENARIO == "patch_fails" and req.get("patch"):
        return emit("error", **error("modal.exception.ImageBuildError", ["modal.exception.RemoteError"], None, "error: patch failed: vllm/x.py:3", "patch"))
    if SCENARIO == "prepare_unavailable":
        return emit("error", **error("grpclib.exceptions.GRPCError", [], "UNAVAILABLE", "connection lost", "image"))
    emit("image", image_id=f"im-fake-{base['kind']}", base_image_id=None, reused=True)


first = json.loads(sys.stdin.readline())
with open(os.path.join(STATE_DIR, "pid"), "w") as f:
    f.write(str(os.getpid()))
emit("hello", protocol=PROTOCOL)
if first.get("cmd") == "create":
    sandbox(first)
record(first)
if first["cmd"] == "check":
    emit("check", python=sys.version.split()[0], modal_version="0.0-fake")
elif first["cmd"] == "prepare":
    prepare(first)
sys.exit(0)
