#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the recorded webhooks in tests/fixtures:
the seed corpus scripts/fuzz.sh starts each target from. Framed seeds (see
fuzz/src/lib.rs): a flags byte, the Content-Type, "\\n", then the body."""

import base64
import glob
import json
import os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seeds = os.path.join(root, "fuzz", "seeds")
fixtures = os.path.join(root, "tests", "fixtures")


def write(target, name, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


oe = sorted(glob.glob(os.path.join(fixtures, "octoeverywhere", "*.json")))
for path in oe:
    body = open(path, "rb").read()
    name = os.path.basename(path)
    write("octoeverywhere", name, body)
    write("detect", name, b"\x00application/json\n" + body)
write("messages", "all-octoeverywhere", b"\x00".join(open(p, "rb").read() for p in oe))

op_bodies = []
for path in sorted(glob.glob(os.path.join(fixtures, "octoprint-webhooks", "*.jsonl"))):
    for line in open(path):
        rec = json.loads(line)
        body = base64.b64decode(rec.get("body_b64", ""))
        ct = next((v for k, v in rec.get("headers", []) if k.lower() == "content-type"), "")
        get = rec.get("method") == "GET"
        flags = b"\x80" if get else b"\x00"
        data = rec.get("query", "").encode() if get else body
        name = f"{os.path.basename(path)}-{rec.get('seq', 0)}"
        framed = flags + ct.encode() + b"\n" + data
        write("octoprint", name, framed)
        write("detect", name, framed)
        if not get and not ct.startswith("multipart/"):
            op_bodies.append(body)
write("messages", "all-octoprint", b"\x00".join(op_bodies))
print("seeds written to", seeds)
