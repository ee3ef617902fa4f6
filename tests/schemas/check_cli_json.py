#!/usr/bin/env python3
"""Runs the ota CLI with --json and validates every document against schemas/ with jsonschema.

Usage: check_cli_json.py OTA_BINARY SCHEMA_DIR WORK_DIR
"""
import json
import os
import random
import base64
import subprocess
import sys
import tarfile

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
    # A patch's header through ota inspect (the same schema as a bundle's, its patch form).
    doc = run([ota, "inspect", "--json", paths["p.otd"]], 0)
    load(schema_dir, "inspect-result.schema.json").validate(doc)
    assert doc["header"]["version"] == 4 and doc["header"]["compression"] == "lzma-old", doc
    assert doc["header"]["new"]["size"] == len(new), doc
    checked += 1
    # A wrong OLD: exit 12 and an error document.
    doc = run([ota, "patch", "--json", paths["new.bin"], paths["p.otd"], "-o", paths["out.bin"] + ".x"], 12)
    error_v.validate(doc)
    assert doc["error"]["code"] == 12 and doc["error"]["name"] == "old_mismatch", doc
    checked += 1
    checked += check_signing(ota, schema_dir, work, paths)
    # The example agent configuration.
    agent_v = load(schema_dir, "agent-config.schema.json")
    agent_v.validate(json.load(open(os.path.join(schema_dir, "..", "examples", "agent.json"))))
    checked += 1
    print(f"schemas: {checked} passed, 0 failed")


def check_signing(ota, schema_dir, work, paths):
    """keygen, root, build, sign, verify, inspect: every document and every --json output."""
    v = {n: load(schema_dir, f"{n}.schema.json") for n in (
        "keygen-result", "public-key", "secret-key", "signed-root", "root", "build-result", "manifest",
        "signatures", "verify-result", "inspect-result", "error-result", "root-result", "sign-result")}
    checked = 0
    k = os.path.join(work, "k")
    s = os.path.join(work, "s")
    for base in (k, s):
        for ext in (".key", ".pub"):
            if os.path.exists(base + ext):
                os.remove(base + ext)
    v["keygen-result"].validate(run([ota, "keygen", "--json", "-o", k], 0))
    pp = os.path.join(work, "pp")
    open(pp, "w").write("correct horse\n")
    doc = run([ota, "keygen", "--json", "-o", s, "--passphrase-file", pp], 0)
    v["keygen-result"].validate(doc)
    assert doc["sealed"] is True, doc
    for path, schema in ((k + ".pub", "public-key"), (k + ".key", "secret-key"), (s + ".key", "secret-key")):
        v[schema].validate(json.load(open(path)))
        checked += 1
    root = os.path.join(work, "root.json")
    v["root-result"].validate(run([ota, "root", "init", "--json", "--key", k + ".pub", "--key", s + ".pub",
                                   "--threshold", "1", "--expires", "2099-01-01", "-o", root], 0))
    v["root-result"].validate(run([ota, "root", "sign", "--json", root, "--key", k + ".key"], 0))
    v["root-result"].validate(run([ota, "root", "show", "--json", root], 0))
    v["root-result"].validate(run([ota, "root", "verify", "--json", root], 0))
    root2 = os.path.join(work, "root2.json")
    v["root-result"].validate(run([ota, "root", "rotate", "--json", "--from", root, "--expires", "2099-06-01",
                                   "-o", root2], 0))
    checked += 5
    env = json.load(open(root))
    v["signed-root"].validate(env)
    v["root"].validate(json.loads(base64.b64decode(env["payload"])))
    checked += 2
    bundle = os.path.join(work, "b.otb")
    doc = run([ota, "build", "--json", "--image", paths["new.bin"], "--base", paths["old.bin"], "--version",
               "2.0.0-rc.1+build.5", "--hw", "board-a", "--security-version", "2", "--expires", "2098-01-01",
               "--key", k + ".key", "-o", bundle], 0)
    v["build-result"].validate(doc)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        assert names[:2] == ["manifest.json", "signatures.json"], names
        v["manifest"].validate(json.load(tar.extractfile("manifest.json")))
        v["signatures"].validate(json.load(tar.extractfile("signatures.json")))
    checked += 3
    doc = run([ota, "verify", "--json", bundle, "--trust", root], 0)
    v["verify-result"].validate(doc)
    assert doc["verdict"] == "valid", doc
    doc = run([ota, "verify", "--json", "--metadata-only", bundle, "--trust", root], 0)
    v["verify-result"].validate(doc)
    doc = run([ota, "verify", "--json", bundle, "--trust", root, "--hw", "board-z"], 27)
    v["verify-result"].validate(doc)
    v["error-result"].validate(doc)
    assert doc["verdict"] == "rejected", doc
    v["inspect-result"].validate(run([ota, "inspect", "--json", bundle], 0))
    v["sign-result"].validate(run([ota, "sign", "--json", bundle, "--export-payload", bundle + ".tbs"], 0))
    v["sign-result"].validate(run([ota, "sign", "--json", bundle, "--key", k + ".key"], 0))
    checked += 2
    checked += 4
    # An encrypted bundle with an SBOM and a security advisory: the X25519 key
    # files, the manifest's encryption/security/plain/sbom fields, and the
    # outputs of build, verify (with and without the key) and inspect.
    e = os.path.join(work, "e")
    for ext in (".key", ".pub"):
        if os.path.exists(e + ext):
            os.remove(e + ext)
    doc = run([ota, "keygen", "--json", "--encryption", "-o", e], 0)
    v["keygen-result"].validate(doc)
    assert doc["type"] == "x25519", doc
    v["public-key"].validate(json.load(open(e + ".pub")))
    v["secret-key"].validate(json.load(open(e + ".key")))
    sbom = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sbom", "fw.cdx.json")
    enc = os.path.join(work, "e.otb")
    doc = run([ota, "build", "--json", "--image", paths["new.bin"], "--base", paths["old.bin"], "--version", "2.0.1",
               "--hw", "board-a", "--key", k + ".key", "--encrypt-to", e + ".pub", "--sbom", sbom,
               "--security-advisory", "Fixes a heap overflow.", "--advisory-id", "CVE-2026-1234", "-o", enc], 0)
    v["build-result"].validate(doc)
    assert doc["encryption"]["recipients"] and doc["security"]["ids"] == ["CVE-2026-1234"], doc
    with tarfile.open(enc) as tar:
        v["manifest"].validate(json.load(tar.extractfile("manifest.json")))
    for extra in ([], ["--decryption-key", e + ".key"]):
        doc = run([ota, "verify", "--json", enc, "--trust", root] + extra, 0)
        v["verify-result"].validate(doc)
        assert doc["plaintext"]["checked"] == bool(extra), doc
        doc = run([ota, "inspect", "--json", enc] + extra, 0)
        v["inspect-result"].validate(doc)
        assert doc["sbom"] is not None, doc
    checked += 9
    return checked


if __name__ == "__main__":
    main()
