"""Write a real pure-Python wheel of a fake `vllm`: make_wheel.py OUT_DIR VERSION < files.json"""
import base64
import hashlib
import json
import os
import sys
import zipfile

out_dir, version = sys.argv[1], sys.argv[2]
files = json.load(sys.stdin)
dist = f"vllm-{version}.dist-info"
files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
files[f"{dist}/WHEEL"] = (
    "Wheel-Version: 1.0\nGenerator: perf-runner-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)
record = []


def entry(name):
    """A zip entry with a fixed time, so the same files give the same wheel bytes."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


path = os.path.join(out_dir, f"vllm-{version}-py3-none-any.whl")
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
        z.writestr(entry(name), data)
    record.append(f"{dist}/RECORD,,")
    z.writestr(entry(f"{dist}/RECORD"), "\n".join(record) + "\n")
print(path)
