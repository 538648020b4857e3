"""Runs the REAL shim (shim/modal_shim.py) against the REAL `modal` package with only its remote
calls replaced, for tests: `App.lookup`, `Sandbox.create` and the sandbox's processes are
stand-ins; images, volumes, secrets and the exceptions are the SDK's own. A per-test wrapper sets
SCENARIO, STATE_DIR and SHIM and execs this file. Markers in STATE_DIR: `created` (a sandbox
exists), `terminated` (the shim terminated it); `create.json` and `execs.jsonl` record what the
shim asked for.
"""

import asyncio
import json
import os
import runpy

import grpclib
import modal
import modal.exception

SCENARIO = globals().get("SCENARIO", "ok")
STATE_DIR = globals().get("STATE_DIR", ".")
SHIM = globals()["SHIM"]


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
    def __init__(self, lines):
        self.lines = list(lines)
        self.read = Aio(self._read)

    async def _read(self):
        return "".join(line + "\n" for line in self.lines)

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for line in self.lines:
            yield line + "\n"


class Proc:
    def __init__(self, out=(), err=(), code=0, alive=False):
        self.stdout, self.stderr = Stream(out), Stream(err)
        self.code, self.alive = code, alive
        self.poll, self.wait = Aio(self._poll), Aio(self._wait)

    async def _poll(self):
        return None if self.alive else self.code

    async def _wait(self):
        while self.alive:
            await asyncio.sleep(0.05)
        return self.code


class Sandbox:
    object_id = "sb-harness"

    def __init__(self, gpus):
        self.gpus = gpus
        self.exec = Aio(self._exec)
        self.terminate = Aio(self._terminate)

    async def _terminate(self):
        mark("terminated")

    async def _exec(self, *argv, **kwargs):
        text = " ".join(argv)
        with open(os.path.join(STATE_DIR, "execs.jsonl"), "a") as f:
            f.write(json.dumps({"argv": argv, "env": sorted(kwargs.get("env") or {}), "secrets": len(kwargs.get("secrets") or [])}) + "\n")
        if argv[0] == "nvidia-smi":
            return Proc(["NVIDIA H100 80GB HBM3"] * self.gpus)
        if "importlib.metadata" in text:
            return Proc(["0.6.3"])
        if argv[0] in ("test", "mkdir"):
            return Proc()
        if "/health" in text:
            return Proc(code=1 if SCENARIO == "never_ready" else 0)
        if "base64" in text:
            return Proc([json.dumps({"result.json": "eyJvayI6IHRydWV9"})])
        if "vllm.entrypoints.openai.api_server" in text:
            return Proc(["INFO: Uvicorn running"], alive=True)
        if SCENARIO == "exec_timeout":
            raise modal.exception.SandboxTimeoutError("Sandbox exceeded its timeout")
        return Proc(["Request throughput (req/s): 9.0"], ["a warning"])


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
        await asyncio.sleep(1.5)
    mark("created")
    gpu = kwargs["gpu"]
    return Sandbox(int(gpu.split(":")[1]) if ":" in gpu else 1)


modal.App.lookup = Aio(lookup)
modal.Sandbox.create = Aio(create)
runpy.run_path(SHIM, run_name="__main__")
