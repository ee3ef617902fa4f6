#!/usr/bin/env python3
"""Turns the raw measurements of bench/delta_bench.sh into the Markdown report and the JSON.

Input: --raw, a TSV with one row per pair per tool (columns in RAW_COLUMNS, written by
delta_bench.sh), and --meta, key<TAB>value lines (command, date, versions, group order...).
Output: the Markdown report on stdout and in --md, all raw and derived numbers in --json.
Exit status: 0 when every tool succeeded and every output matched NEW, 1 otherwise
(targets missed do not count: this is a measurement).

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RAW_COLUMNS = [
    "pair", "groups", "kind", "label", "tool", "old_path", "new_path", "old_size", "new_size",
    "differing_bytes", "patch_bytes", "diff_rc", "diff_wall_s", "diff_rss_kib", "diff_wall_hires_s",
    "diff_cpu_s", "diff_other_cores", "apply_rc", "apply_wall_s", "apply_rss_kib", "apply_wall_hires_s",
    "apply_cpu_s", "apply_other_cores", "verify", "diff_cmd",
    "apply_cmd", "diff_stdout", "apply_stdout",
]
INT_COLUMNS = {"old_size", "new_size", "differing_bytes", "patch_bytes", "diff_rc", "diff_rss_kib",
               "apply_rc", "apply_rss_kib"}
FLOAT_COLUMNS = {"diff_wall_s", "diff_wall_hires_s", "apply_wall_s", "apply_wall_hires_s", "diff_cpu_s",
                 "apply_cpu_s", "diff_other_cores", "apply_other_cores"}
TOOLS = ["ota", "bsdiff", "xdelta3", "zstd"]
BASELINE = "bsdiff"

# Product targets, as ratios of ota to bsdiff measured in the same run.
PATCH_RATIO_MAX = 0.90
TINY_PATCH_MAX_BYTES = 100          # strictly under
BIG_DIFF_WALL_RATIO_MAX = 0.12
BIG_DIFF_RSS_RATIO_MAX = 0.75
BIG_APPLY_RSS_MAX_KIB = 2048
BIG_APPLY_WALL_RATIO_MAX = 0.25

# A measurement is flagged as contended when other processes kept this many CPU
# cores busy on average while it ran (and it ran long enough for that to matter).
CONTENDED_CORES = 0.25
CONTENDED_MIN_WALL_S = 0.5


def parse_value(col: str, text: str):
    if text == "":
        return None
    if col in INT_COLUMNS:
        return int(text)
    if col in FLOAT_COLUMNS:
        return float(text)
    return text


def read_rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(RAW_COLUMNS):
            raise SystemExit(f"delta_report: malformed raw row ({len(fields)} fields): {line!r}")
        row = {c: parse_value(c, v) for c, v in zip(RAW_COLUMNS, fields)}
        row["groups"] = row["groups"].split(",")
        row["ok"] = row["verify"] == "OK"
        # ota's --json summaries (records, frames, copy/add/insert bytes), when parseable.
        for step in ("diff", "apply"):
            out = row.pop(f"{step}_stdout")
            if row["tool"] == "ota" and out:
                try:
                    row[f"ota_{step}_json"] = json.loads(Path(out).read_text())
                except (OSError, ValueError):
                    row[f"ota_{step}_json"] = None
        rows.append(row)
    return rows


def read_meta(path: Path) -> tuple[dict, list[str]]:
    meta, notes = {}, []
    for line in path.read_text().splitlines():
        if "\t" not in line:
            continue
        key, value = line.split("\t", 1)
        if key == "note":
            notes.append(value)
        else:
            meta[key] = value
    return meta, notes


def aggregate(rows: list[dict]) -> dict:
    """One tool over several pairs: sizes and wall times summed, peak RSS the max."""
    def total(key):
        vals = [r[key] for r in rows]
        return None if any(v is None for v in vals) else sum(vals)

    def peak(key):
        vals = [r[key] for r in rows]
        return None if any(v is None for v in vals) else max(vals)

    return {
        "pairs": len(rows),
        "old_size": total("old_size"),
        "new_size": total("new_size"),
        "patch_bytes": total("patch_bytes"),
        "diff_wall_s": total("diff_wall_s"),
        "diff_rss_kib": peak("diff_rss_kib"),
        "apply_wall_s": total("apply_wall_s"),
        "apply_rss_kib": peak("apply_rss_kib"),
        "diff_wall_hires_s": total("diff_wall_hires_s"),
        "apply_wall_hires_s": total("apply_wall_hires_s"),
        "diff_cpu_s": total("diff_cpu_s"),
        "apply_cpu_s": total("apply_cpu_s"),
        "ok": all(r["ok"] for r in rows),
    }


RATIO_KEYS = ["patch_bytes", "diff_wall_s", "diff_rss_kib", "apply_wall_s", "apply_rss_kib"]
# /usr/bin/time reports wall time in hundredths of a second: a wall-time ratio
# against a baseline shorter than this is noise and is not given.
MIN_BASELINE_WALL_S = 0.10


def ratios(ota: dict | None, base: dict | None) -> dict:
    """ota / bsdiff for each metric; None when either side failed, the baseline is 0,
    or (wall times) the baseline is under MIN_BASELINE_WALL_S."""
    out = {"ok": bool(ota and base and ota["ok"] and base["ok"])}
    for k in RATIO_KEYS:
        a = ota.get(k) if ota else None
        b = base.get(k) if base else None
        if k.endswith("_wall_s") and b is not None and b < MIN_BASELINE_WALL_S:
            b = None
        out[k] = (a / b) if (out["ok"] and a is not None and b) else None
    return out


# ---- formatting ----

def fmt_int(v) -> str:
    return "-" if v is None else f"{v:,}"


def fmt_pct(patch, new) -> str:
    if patch is None or not new:
        return "-"
    pct = 100.0 * patch / new
    return f"{pct:.3f}%" if pct >= 0.01 else f"{pct:.2g}%"


def fmt_s(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def fmt_mib(kib) -> str:
    return "-" if kib is None else f"{kib / 1024:.2f}"


def fmt_ratio(v, ok=True) -> str:
    if not ok:
        return "FAIL"
    return "n/a" if v is None else f"{v:.3f}"


def table(header: list[str], body: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def tool_row(name: str, tool: str, m: dict) -> list[str]:
    return [name, tool, fmt_int(m["new_size"]), fmt_int(m["patch_bytes"]),
            fmt_pct(m["patch_bytes"], m["new_size"]), fmt_s(m["diff_wall_s"]), fmt_s(m["diff_cpu_s"]),
            fmt_mib(m["diff_rss_kib"]),
            fmt_s(m["apply_wall_s"]), fmt_mib(m["apply_rss_kib"]), "OK" if m["ok"] else "**FAIL**"]


TOOL_HEADER = ["Pair", "Tool", "NEW bytes", "Patch bytes", "% of NEW", "Diff wall s", "Diff CPU s", "Diff peak MiB",
               "Apply wall s", "Apply peak MiB", "Output = NEW"]
RATIO_HEADER = ["Pair or group", "Patch bytes", "Diff wall", "Diff peak RSS", "Apply wall", "Apply peak RSS"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--meta", required=True, type=Path)
    ap.add_argument("--md", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    args = ap.parse_args()

    rows = read_rows(args.raw)
    meta, notes = read_meta(args.meta)
    quick = meta.get("quick") == "1"

    # Pairs in measurement order, each with its rows by tool.
    pairs: dict[str, dict] = {}
    for r in rows:
        p = pairs.setdefault(r["pair"], {"label": r["label"], "kind": r["kind"], "groups": r["groups"],
                                         "old_size": r["old_size"], "new_size": r["new_size"],
                                         "differing_bytes": r["differing_bytes"], "tools": {}})
        p["tools"][r["tool"]] = r
    tools = [t for t in TOOLS if any(t in p["tools"] for p in pairs.values())]
    tools += sorted({r["tool"] for r in rows} - set(tools))

    # Groups.
    group_order = [g for g in meta.get("group_order", "").split(",") if g]
    for r in rows:
        for g in r["groups"]:
            if g not in group_order:
                group_order.append(g)
    groups: dict[str, dict] = {}
    for g in group_order:
        members = [pid for pid, p in pairs.items() if g in p["groups"]]
        if not members:
            continue
        if members == [g]:
            label = pairs[g]["label"]
        elif g == "firmware":
            label = f"firmware: all pybricks boards ({len(members)})"
        elif g.startswith("pybricks-"):
            a, b = g[len("pybricks-"):].split("-", 1)
            label = f"pybricks {a}->{b}: all boards ({len(members)})"
        else:
            label = f"{g} ({len(members)} pairs)"
        by_tool = {}
        for t in tools:
            trs = [pairs[m]["tools"][t] for m in members if t in pairs[m]["tools"]]
            if len(trs) == len(members):
                by_tool[t] = aggregate(trs)
        groups[g] = {"label": label, "pairs": members, "tools": by_tool,
                     "ota_vs_bsdiff": ratios(by_tool.get("ota"), by_tool.get(BASELINE))}
    for p in pairs.values():
        p["ota_vs_bsdiff"] = ratios(p["tools"].get("ota"), p["tools"].get(BASELINE))

    # Measurements disturbed by other processes on the machine.
    contended = {}
    for r in rows:
        for step in ("diff", "apply"):
            other, wall = r.get(f"{step}_other_cores"), r.get(f"{step}_wall_hires_s")
            if other is not None and wall is not None and wall >= CONTENDED_MIN_WALL_S and other >= CONTENDED_CORES:
                contended[(r["pair"], r["tool"], step)] = other

    def contention_note(pair, step, tools_=("ota", BASELINE)):
        hits = [f"{t} {contended[(pair, t, step)]:.2f}" for t in tools_ if (pair, t, step) in contended]
        return f" [contended: other processes busy on {', '.join(hits)} cores]" if hits else ""

    # Targets.
    targets = []

    def target(name, measured, limit, passed, status=None):
        targets.append({"target": name, "measured": measured, "limit": limit,
                        "result": status or ("PASS" if passed else "MISS")})

    # target_groups: "GROUP=LIMIT[=WHAT]" entries (a bare GROUP takes PATCH_RATIO_MAX), where WHAT
    # says which class of pair the limit is for (patch release, minor release, firmware, ext4).
    for entry in [e for e in meta.get("target_groups", "").split(",") if e]:
        g, _, rest = entry.partition("=")
        limit_text, _, what = rest.partition("=")
        ratio_max = float(limit_text) if limit_text else PATCH_RATIO_MAX
        label = groups[g]["label"] if g in groups else g
        name = f"patch bytes <= {ratio_max:.2f} x bsdiff" + (f" ({what})" if what else "") + f": {label}"
        limit = f"<= {ratio_max:.2f}"
        if g not in groups:
            target(name, "not measured", limit, False, "SKIP")
            continue
        rr = groups[g]["ota_vs_bsdiff"]
        if not rr["ok"] or rr["patch_bytes"] is None:
            target(name, "tool failed", limit, False, "FAIL")
        else:
            t = groups[g]["tools"]
            target(name, f"{rr['patch_bytes']:.3f} ({t['ota']['patch_bytes']:,} / {t[BASELINE]['patch_bytes']:,} B)",
                   limit, rr["patch_bytes"] <= ratio_max)

    tiny = meta.get("tiny_pair", "")
    name = f"ota patch < {TINY_PATCH_MAX_BYTES} bytes: {pairs[tiny]['label'] if tiny in pairs else tiny}"
    if tiny not in pairs:
        target(name, "not measured", f"< {TINY_PATCH_MAX_BYTES} B", False, "SKIP")
    else:
        o = pairs[tiny]["tools"].get("ota")
        if not o or not o["ok"]:
            target(name, "ota failed", f"< {TINY_PATCH_MAX_BYTES} B", False, "FAIL")
        else:
            d = pairs[tiny]["differing_bytes"]
            extra = f" (OLD and NEW differ in {d} bytes)" if d is not None else ""
            target(name, f"{o['patch_bytes']:,} B{extra}", f"< {TINY_PATCH_MAX_BYTES} B",
                   o["patch_bytes"] < TINY_PATCH_MAX_BYTES)

    big = meta.get("big_pair", "")
    big_label = pairs[big]["label"] if big in pairs else big
    big_checks = [
        ("diff wall", "diff_wall_s", BIG_DIFF_WALL_RATIO_MAX, "x bsdiff", "s"),
        ("diff peak RSS", "diff_rss_kib", BIG_DIFF_RSS_RATIO_MAX, "x bsdiff", "KiB"),
        ("apply peak RSS", "apply_rss_kib", None, "", "KiB"),
        ("apply wall", "apply_wall_s", BIG_APPLY_WALL_RATIO_MAX, "x bspatch", "s"),
    ]
    for what, key, ratio_max, rel, unit in big_checks:
        limit = (f"<= {ratio_max:.2f} {rel}" if ratio_max is not None
                 else f"<= {BIG_APPLY_RSS_MAX_KIB} KiB (2 MiB)")
        name = f"{what}: {big_label}"
        if big not in pairs:
            target(name, "not measured" + (" (--quick)" if quick else ""), limit, False, "SKIP")
            continue
        o, b = pairs[big]["tools"].get("ota"), pairs[big]["tools"].get(BASELINE)
        if ratio_max is None:
            if not o or not o["ok"] or o[key] is None:
                target(name, "ota failed", limit, False, "FAIL")
            else:
                target(name, f"{o[key]:,} KiB ({o[key] / 1024:.2f} MiB)", limit, o[key] <= BIG_APPLY_RSS_MAX_KIB)
            continue
        r = pairs[big]["ota_vs_bsdiff"]
        if not r["ok"] or r[key] is None:
            target(name, "tool failed", limit, False, "FAIL")
        else:
            fmt = (lambda v: f"{v:.2f} s") if unit == "s" else (lambda v: f"{v / 1024:.1f} MiB")
            note = contention_note(big, key.split("_")[0]) if unit == "s" else ""
            target(name, f"{r[key]:.3f} ({fmt(o[key])} / {fmt(b[key])}){note}", limit, r[key] <= ratio_max)

    failures = [f"{r['label']}: {r['tool']} (diff rc={r['diff_rc']}, apply rc={r['apply_rc']}, output {r['verify']})"
                for r in rows if not r["ok"]]

    # ---- Markdown ----
    md = ["# ota delta benchmark", ""]
    md.append(f"- Command: `{meta.get('command', '?')}`")
    md.append(f"- Date: {meta.get('date', '?')}")
    md.append(f"- Machine: {meta.get('arch', '?')}, {meta.get('cpu', '?')}, nproc {meta.get('nproc', '?')}; "
              f"load average (1, 5, 15 min) {meta.get('loadavg', '?')}")
    diff_args = meta.get("ota_diff_args", "")
    options = f"default options plus `ota diff {diff_args}`" if diff_args else "default options"
    md.append(f"- ota: `{meta.get('ota_version', '?')}`, {options}: {meta.get('ota_path', '?')} "
              f"(built {meta.get('ota_mtime', '?')}, source {meta.get('git_rev', '?')}), copied at the start "
              f"to {meta.get('ota_run_path', '?')} (sha256 {meta.get('ota_sha256', '?')}...) and run from there")
    md.append(f"- Peers (dpkg-query -W bsdiff xdelta3 zstd): {meta.get('dpkg', '?')}")
    runs = meta.get("apply_runs", "1")
    md.append("- Wall s and peak RSS from `/usr/bin/time -f '%e %M'` (warm page cache, `sync` before each run): "
              f"each diff runs once; each apply runs {runs} times, the same for every tool, and the run with "
              f"the median wall time is reported, with the highest peak RSS of the {runs}; "
              "group sizes and wall times are sums over the group's pairs, group peak RSS the max.")
    md.append("- CPU s: user + system time of the command (all its threads); ota uses one thread per core "
              "by default, the peers one.")
    for n in notes:
        md.append(f"- Note: {n}")
    if contended:
        worst = sorted(contended.items(), key=lambda kv: -kv[1])
        listed = "; ".join(f"{pairs[p]['label']} {t} {st} ({c:.2f} cores)" for (p, t, st), c in worst[:8])
        md.append(f"- **Warning**: other processes kept >= {CONTENDED_CORES} CPU cores busy during "
                  f"{len(contended)} measurement(s) of 0.5 s or more, so their wall times are inflated: "
                  f"{listed}{f' and {len(worst) - 8} more' if len(worst) > 8 else ''}. "
                  "Rerun on a quiet machine for wall-time targets.")
    if quick:
        md.append("- `--quick`: the node pairs were skipped.")
    md.append("")

    md += ["## Targets (ota against bsdiff in the same run)", ""]
    md += table(["Target", "Measured", "Limit", "Result"],
                [[t["target"], t["measured"], t["limit"],
                  t["result"] if t["result"] == "PASS" else f"**{t['result']}**"] for t in targets],
                ["l", "r", "l", "l"])
    counts = {k: sum(1 for t in targets if t["result"] == k) for k in ("PASS", "MISS", "FAIL", "SKIP")}
    md += ["", "Targets: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v), ""]

    md += ["## Ratios ota / bsdiff (below 1: ota is smaller, faster or leaner)", ""]
    body = []
    for g, gd in groups.items():
        rr = gd["ota_vs_bsdiff"]
        body.append([f"**{gd['label']}**"] + [fmt_ratio(rr[k], rr["ok"]) for k in RATIO_KEYS])
    for pid, p in pairs.items():
        if pid in groups:
            continue   # a one-pair group is already listed
        rr = p["ota_vs_bsdiff"]
        body.append([p["label"]] + [fmt_ratio(rr[k], rr["ok"]) for k in RATIO_KEYS])
    md += table(RATIO_HEADER, body)
    md += ["", f"n/a: a wall time ratio against a bsdiff/bspatch time under {MIN_BASELINE_WALL_S:.2f} s "
           "(below the resolution of /usr/bin/time); the JSON has a finer clock (`*_wall_hires_s`).", ""]

    md += ["## Groups", ""]
    body = []
    for g, gd in groups.items():
        for t in tools:
            if t in gd["tools"]:
                body.append(tool_row(gd["label"], t, gd["tools"][t]))
    md += table(["Group"] + TOOL_HEADER[1:], body, ["l", "l"] + ["r"] * 9)
    md.append("")

    md += ["## Per pair", ""]
    body = []
    for pid, p in pairs.items():
        for t in tools:
            if t in p["tools"]:
                r = p["tools"][t]
                body.append(tool_row(p["label"], t, {**r, "ok": r["ok"]}))
    md += table(TOOL_HEADER, body, ["l", "l"] + ["r"] * 9)
    md.append("")

    md += ["## Commands (as run on the last pair)", ""]
    last = list(pairs.values())[-1] if pairs else None
    body = []
    if last:
        for t in tools:
            if t in last["tools"]:
                r = last["tools"][t]
                body.append([t, f"`{r['diff_cmd']}`", f"`{r['apply_cmd']}`"])
    md += table(["Tool", "Diff", "Apply"], body, ["l", "l", "l"])
    md += ["", "Every output was compared with NEW byte for byte (`cmp`).", ""]
    if failures:
        md += ["## Failures", ""] + [f"- {f}" for f in failures] + [""]
    else:
        md += ["All tools succeeded and every output matched NEW.", ""]

    text = "\n".join(md)
    args.md.write_text(text)
    sys.stdout.write(text)

    doc = {
        "meta": {**meta, "notes": notes},
        "contended": [{"pair": p, "tool": t, "step": st, "other_cores": c} for (p, t, st), c in contended.items()],
        "targets": targets,
        "failures": failures,
        "groups": groups,
        "pairs": {pid: {k: v for k, v in p.items() if k != "tools"} for pid, p in pairs.items()},
        "rows": rows,
    }
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
