"""A stand-in for the Modal shim, for tests only: it speaks the same JSON lines but contacts
nobody. A per-test wrapper sets SCENARIO and STATE_DIR and execs this file. It records every
request in STATE_DIR/requests.jsonl, its pid in STATE_DIR/pid, and markers: `created` when its
pretend sandbox exists, `terminated` when a cancel (stdin line, EOF or SIGTERM) made it
terminate that sandbox.
"""

import base64
import json
import os
import signal
import sys
import threading
import time

SCENARIO = globals().get("SCENARIO", "ok")
STATE_DIR = globals().get("STATE_DIR", ".")
NAMES = {"H100": "NVIDIA H100 80GB HBM3", "H200": "NVIDIA H200", "A100-80GB": "NVIDIA A100-SXM4-80GB"}


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def mark(name):
    with open(os.path.join(STATE_DIR, name), "a") as f:
        f.write(f"{os.getpid()}\n")


def error(cls, bases=(), grpc=None, message="", phase=None):
    emit("error", **{"class": cls, "classes": [cls, *bases], "grpc_status": grpc, "message": message, "phase": phase})


req = json.loads(sys.stdin.readline())
with open(os.path.join(STATE_DIR, "requests.jsonl"), "a") as f:
    f.write(json.dumps(req) + "\n")
with open(os.path.join(STATE_DIR, "pid"), "w") as f:
    f.write(str(os.getpid()))
cancelled = threading.Event()


def watch():
    for line in sys.stdin:
        try:
            if json.loads(line).get("cmd") == "cancel":
                break
        except ValueError:
            pass
    cancelled.set()


threading.Thread(target=watch, daemon=True).start()
if SCENARIO == "ignore_cancel":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: cancelled.set())


def wait_for_cancel(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancelled.wait(0.05):
            mark("terminated")
            emit("terminated", sandbox_id="sb-fake", seconds=1.0)
            emit("cancelled")
            sys.exit(130)
    mark("never_cancelled")
    sys.exit(3)


def run():
    gpu = req["sandbox"]["gpu"]
    kind, _, count = gpu.partition(":")
    kind, count = kind.rstrip("!"), int(count or 1)
    if SCENARIO == "unavailable":
        return error("modal.exception.ServiceError", ["modal.exception.Error"], "UNAVAILABLE", "Sandbox create: 503", "sandbox")
    if SCENARIO == "auth":
        return error("modal.exception.AuthError", ["modal.exception.Error"], "UNAUTHENTICATED", "Token missing", "sandbox")
    emit("stage", stage="sandbox", detail="created", sandbox_id="sb-fake")
    mark("created")
    name = "NVIDIA H200" if SCENARIO == "gpu_mismatch" else NAMES.get(kind, f"NVIDIA {kind}")
    emit("gpu", names=[name] * count)
    if SCENARIO == "gpu_mismatch":
        wait_for_cancel(30)
    emit("version", engine_version="0.6.3")
    if SCENARIO in ("hang", "ignore_cancel"):
        emit("log", stream="server", line="INFO: starting")
        if SCENARIO == "ignore_cancel":
            while True:
                time.sleep(0.1)
        wait_for_cancel(60)
    if SCENARIO == "sandbox_timeout":
        error("modal.exception.SandboxTimeoutError", ["modal.exception.TimeoutError", "modal.exception.Error"], None, "Sandbox timed out", "client")
        emit("terminated", sandbox_id="sb-fake", seconds=50.0)
        return
    if req.get("server"):
        for i in range(3):
            emit("log", stream="server", line=f"INFO server line {i}")
    if SCENARIO == "server_exited":
        emit("log", stream="server", line="RuntimeError: CUDA error: no kernel image")
        error("perf_runner.ServerExited", ["perf_runner.ShimError"], None, "the server exited with code 1 before it was ready", "server")
        emit("terminated", sandbox_id="sb-fake", seconds=20.0)
        return
    if req.get("warmup"):
        emit("log", stream="warmup_stdout", line="warm-up done")
        emit("exit", code=0, phase="warmup", seconds=1.0)
    emit("log", stream="client_stdout", line="Request throughput (req/s): 12.5")
    emit("log", stream="client_stderr", line="a warning")
    code = 3 if SCENARIO == "client_fails" else 0
    emit("exit", code=code, phase="client", seconds=4.25)
    if code == 0:
        body = base64.b64encode(json.dumps({"request_throughput": 12.5}).encode()).decode()
        emit("result_file", name="result.json", content_b64=body)
        emit("result_file", name="../escape.json", content_b64=body)
    emit("terminated", sandbox_id="sb-fake", seconds=100.0)


def prepare():
    base = req["image"]["base"]
    if SCENARIO == "first_build_fails" and base["kind"] == "debian_slim":
        return error("modal.exception.ImageBuildError", ["modal.exception.RemoteError"], None, "Image build for im-1 failed", "image")
    if SCENARIO == "patch_fails" and req.get("patch"):
        return error("modal.exception.ImageBuildError", ["modal.exception.RemoteError"], None, "error: patch failed: vllm/x.py:3", "patch")
    if SCENARIO == "prepare_unavailable":
        return error("grpclib.exceptions.GRPCError", [], "UNAVAILABLE", "connection lost", "image")
    emit("image", image_id=f"im-fake-{base['kind']}", base_image_id=None, reused=True)


emit("hello", protocol=1)
if req["cmd"] == "check":
    emit("check", python=sys.version.split()[0], modal_version="0.0-fake")
elif req["cmd"] == "prepare":
    prepare()
elif req["cmd"] == "run":
    run()
sys.exit(0)
