#!/usr/bin/env python3
"""Validates JSON documents against one schema of schemas/ (with $ref to its siblings).

Usage: validate.py SCHEMA_DIR SCHEMA_NAME FILE...   (a .jsonl file: every line is a document)
Exit 0 when every document validates; 1 with the first error otherwise.
"""
import json
import os
import sys

import jsonschema


def main():
    schema_dir, name, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    store = {}
    for n in os.listdir(schema_dir):
        if n.endswith(".schema.json"):
            with open(os.path.join(schema_dir, n)) as f:
                s = json.load(f)
            jsonschema.Draft202012Validator.check_schema(s)
            store[s["$id"]] = s
            store[n] = s
    schema = store[name]
    resolver = jsonschema.RefResolver(base_uri=schema["$id"], referrer=schema, store=store)
    v = jsonschema.Draft202012Validator(schema, resolver=resolver)
    count = 0
    for path in files:
        with open(path) as f:
            docs = [json.loads(l) for l in f if l.strip()] if path.endswith(".jsonl") else [json.load(f)]
        for d in docs:
            v.validate(d)
            count += 1
    if count == 0:
        sys.exit("validate.py: no documents")
    print(f"{count} document(s) match {name}")


if __name__ == "__main__":
    main()
