"""Test double of vllm.entrypoints.cli.main: `bench serve|throughput|latency`.

FAKE_VLLM_CLIENT: ok | hang | fail
FAKE_VLLM_STATE_DIR: where it writes client.pid and client-env.json
"""
import argparse
import json
import os
import sys
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("cmd")
parser.add_argument("sub")
parser.add_argument("--host")
parser.add_argument("--port")
parser.add_argument("--num-prompts", type=int, default=10)
parser.add_argument("--save-result", action="store_true")
parser.add_argument("--result-dir")
parser.add_argument("--result-filename")
parser.add_argument("--output-json")
args, _ = parser.parse_known_args()
mode = os.environ.get("FAKE_VLLM_CLIENT", "ok")
state = os.environ.get("FAKE_VLLM_STATE_DIR")


def save(name, obj):
    # Written whole, then renamed: a test that sees the file can read all of it.
    if state:
        path = os.path.join(state, name)
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f)
        os.replace(path + ".tmp", path)


save("client.pid", os.getpid())
save(f"client-env-{args.num_prompts}.json", dict(os.environ))
if mode == "hang":
    time.sleep(3600)
if mode == "fail":
    print("error: unrecognized arguments: --bogus", file=sys.stderr)
    sys.exit(2)

if args.sub == "serve":
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{args.host}:{args.port}/health", timeout=5) as r:
        assert r.status == 200
    print("============ Serving Benchmark Result ============")
    print(f"Successful requests:                     {args.num_prompts}")
    print("Request throughput (req/s):              12.34")
    print("==================================================")
    if args.save_result:
        with open(os.path.join(args.result_dir, args.result_filename), "w") as f:
            json.dump({"request_throughput": 12.34, "completed": args.num_prompts}, f)
else:
    print("Throughput: 5.00 requests/s, 1000.00 total tokens/s, 500.00 output tokens/s")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"requests_per_second": 5.0, "elapsed_time": 2.0}, f)
