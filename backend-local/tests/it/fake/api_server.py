"""Test double of vllm.entrypoints.openai.api_server: answers /health on --port.

FAKE_VLLM_SERVER: ok | crash | hang | ignore_term | port_taken_once
FAKE_VLLM_STATE_DIR: where it writes server.pid, child.pid and server-env.json
"""
import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
args, _ = parser.parse_known_args()
mode = os.environ.get("FAKE_VLLM_SERVER", "ok")
state = os.environ.get("FAKE_VLLM_STATE_DIR")


def save(name, obj):
    # Written whole, then renamed: a test that sees the file can read all of it.
    if state:
        path = os.path.join(state, name)
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f)
        os.replace(path + ".tmp", path)


save("server-env.json", dict(os.environ))
save("server.pid", os.getpid())
print(f"INFO: starting fake vllm server, mode {mode}", flush=True)

if mode == "crash":
    print("torch.OutOfMemoryError: CUDA out of memory (fake)", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "port_taken_once" and state and not os.path.exists(os.path.join(state, "taken")):
    open(os.path.join(state, "taken"), "w").close()
    print("OSError: [Errno 98] Address already in use", file=sys.stderr, flush=True)
    sys.exit(1)

# A helper process in the same group, like vLLM's engine workers.
child_code = "import signal, time\n"
if mode == "ignore_term":
    child_code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
child_code += "time.sleep(3600)\n"
child = subprocess.Popen([sys.executable, "-c", child_code])
save("child.pid", child.pid)

if mode == "hang":
    time.sleep(3600)
if mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *a):
        sys.stderr.write("INFO: " + (fmt % a) + "\n")


server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
print(f"INFO: Uvicorn running on http://{args.host}:{args.port}", flush=True)
server.serve_forever()
