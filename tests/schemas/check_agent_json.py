#!/usr/bin/env python3
"""Runs ota-agent with --json through an install, a reboot, boot-check, status, a rollback and
failures, and validates every document against schemas/agent-result.schema.json.

Usage: check_agent_json.py OTA_BINARY AGENT_BINARY SCHEMA_DIR WORK_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

import jsonschema


def main():
    ota, agent, schema_dir, work = sys.argv[1:5]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    store = {}
    for name in ("agent-result.schema.json", "error-result.schema.json", "agent-config.schema.json"):
        with open(os.path.join(schema_dir, name)) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        store[schema["$id"]] = schema
    # The one reference to another file (error-result.schema.json) is inlined,
    # which every jsonschema version resolves the same way.
    result = json.loads(json.dumps(store["https://ota.invalid/schemas/agent-result.schema.json"]))
    error = dict(store["https://ota.invalid/schemas/error-result.schema.json"])
    error.pop("$id"), error.pop("$schema")
    result["$defs"]["error"] = error
    result["oneOf"] = [{"$ref": "#/$defs/error"} if r == {"$ref": "error-result.schema.json"} else r
                       for r in result["oneOf"]]
    validator = jsonschema.Draft202012Validator(result)
    config_validator = jsonschema.Draft202012Validator(store["https://ota.invalid/schemas/agent-config.schema.json"])

    p = lambda n: os.path.join(work, n)
    rng = random.Random(11)
    old = bytes(rng.randrange(256) for _ in range(40000))
    new = bytearray(old)
    for _ in range(30):
        new[rng.randrange(len(new))] = rng.randrange(256)
    open(p("old.img"), "wb").write(old)
    open(p("new.img"), "wb").write(bytes(new))
    env = dict(os.environ, SOURCE_DATE_EPOCH="1780000000")

    def sh(cmd):
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
        if r.returncode != 0:
            sys.exit(f"{cmd}: exit {r.returncode}\n{r.stderr}")

    sh([ota, "keygen", "-o", p("k")])
    sh([ota, "root", "init", "--key", p("k.pub"), "--threshold", "1", "--expires", "2099-01-01", "-o", p("root.json"), "-q"])
    sh([ota, "root", "sign", p("root.json"), "--key", p("k.key")])
    sh([ota, "build", "--image", p("new.img"), "--base", p("old.img"), "--version", "1.1.0", "--hw", "board",
        "--key", p("k.key"), "-q", "-o", p("fw.otb")])
    for bank in ("bank-a", "bank-b"):
        with open(p(bank), "wb") as f:
            f.write((old if bank == "bank-a" else b"") + bytes(65536 - (len(old) if bank == "bank-a" else 0)))
    config = {"device_id": "d1", "hardware_id": "board", "banks": {"a": p("bank-a"), "b": p("bank-b")},
              "boot": {"backend": "file", "file": p("env.json")}, "trust_root": p("root.json"),
              "state_dir": p("state"), "health_check": {"command": ["false"], "timeout_s": 5},
              "download": {"retries": 1, "stall_timeout_s": 5}}
    config_validator.validate(config)
    json.dump(config, open(p("agent.json"), "w"))

    checked = 0

    def run(args, expect):
        nonlocal checked
        r = subprocess.run([agent, "-c", p("agent.json")] + args + ["--json"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != expect:
            sys.exit(f"ota-agent {args}: exit {r.returncode}, expected {expect}\n{r.stderr}")
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        if len(lines) != 1:
            sys.exit(f"ota-agent {args}: expected one JSON line, got {lines!r}")
        doc = json.loads(lines[0])
        validator.validate(doc)
        if not doc["ok"] and doc["error"]["code"] != expect:
            sys.exit(f"ota-agent {args}: error.code {doc['error']['code']} but exit {expect}")
        checked += 1
        return doc

    run(["status"], 0)
    run(["install", p("fw.otb")], 0)
    run(["status"], 0)
    run(["install", p("fw.otb")], 41)              # trial pending
    run(["simulate-boot"], 0)
    run(["boot-check"], 42)                         # health check "false": rolled back
    run(["boot-check"], 0)                          # nothing to do
    run(["rollback"], 2)                            # nothing to roll back
    run(["commit"], 2)
    run(["install", "ftp://x/fw.otb"], 2)
    run(["install", p("missing.otb")], 3)
    print(f"agent schemas: {checked} passed, 0 failed")


if __name__ == "__main__":
    main()
