#!/usr/bin/env python3
"""Runs the ota CLI with --json and validates every document against schemas/ with jsonschema.

Usage: check_cli_json.py OTA_BINARY SCHEMA_DIR WORK_DIR
"""
import json
import os
import random
import subprocess
import sys

import jsonschema


def load(schema_dir, name):
    with open(os.path.join(schema_dir, name)) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def run(cmd, expect_rc):
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != expect_rc:
        sys.exit(f"{cmd}: exit {p.returncode}, expected {expect_rc}\n{p.stderr}")
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if len(lines) != 1:
        sys.exit(f"{cmd}: expected one JSON line on stdout, got {lines!r}")
    return json.loads(lines[0])


def main():
    ota, schema_dir, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    rng = random.Random(7)
    old = bytes(rng.randrange(256) for _ in range(50000))
    new = bytearray(old)
    for _ in range(40):
        new[rng.randrange(len(new))] = rng.randrange(256)
    new = bytes(new[:20000]) + b"inserted" * 100 + bytes(new[20000:])
    paths = {n: os.path.join(work, n) for n in ("old.bin", "new.bin", "p.otd", "p.bsdiff", "out.bin")}
    open(paths["old.bin"], "wb").write(old)
    open(paths["new.bin"], "wb").write(new)

    diff_v = load(schema_dir, "diff-result.schema.json")
    patch_v = load(schema_dir, "patch-result.schema.json")
    error_v = load(schema_dir, "error-result.schema.json")
    checked = 0
    for fmt, out in (("ota", paths["p.otd"]), ("bsdiff40", paths["p.bsdiff"])):
        diff_v.validate(run([ota, "diff", "--json", "--format", fmt, paths["old.bin"], paths["new.bin"], "-o", out], 0))
        doc = run([ota, "patch", "--json", paths["old.bin"], out, "-o", paths["out.bin"]], 0)
        patch_v.validate(doc)
        assert doc["format"] == fmt, doc
        assert open(paths["out.bin"], "rb").read() == new
        checked += 2
    # A wrong OLD: exit 12 and an error document.
    doc = run([ota, "patch", "--json", paths["new.bin"], paths["p.otd"], "-o", paths["out.bin"] + ".x"], 12)
    error_v.validate(doc)
    assert doc["error"]["code"] == 12 and doc["error"]["name"] == "old_mismatch", doc
    checked += 1
    print(f"schemas: {checked} passed, 0 failed")


if __name__ == "__main__":
    main()
