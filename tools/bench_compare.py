#!/usr/bin/env python3
"""Markdown table of `amsnet bench --what suite --json` beside tools/bench_reference.py runs.

  python3 tools/bench_compare.py OURS.json REF_EAGER.json [REF_COMPILE.json ...]

Rows are matched by "key". "x" columns are speed-ups of amsnet (reference time / amsnet time);
"mem" columns are amsnet's peak memory over the reference's.
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"bench_compare: cannot read '{path}': {e}")


def mib(b):
    return "-" if b is None else f"{b / 2**20:,.0f}"


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    ours, refs = load(argv[0]), [load(p) for p in argv[1:]]
    head = ["measurement", "amsnet s", "amsnet MiB"]
    for r in refs:
        label = r.get("engine", "reference")
        head += [f"{label} s", f"{label} MiB", "x", "mem"]
    print(f"amsnet: {ours.get('device')}; {ours.get('model')}")
    for r in refs:
        print(f"{r.get('engine')}: torch {r.get('torch')}, CUDA {r.get('cuda')}, {r.get('device')}, "
              f"precision {r.get('precision')}, preset {r.get('preset')}")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    by_key = [{e["key"]: e for e in r["results"]} for r in refs]
    for e in ours["results"]:
        if "error" in e:  # a training step that did not fit: its reason instead of amsnet's figures
            row = [e["name"], "not run: " + e["error"].replace("|", "/"), "-"]
        else:
            row = [e["name"], f"{e['seconds']:.4f}", mib(e.get("peak_memory_bytes"))]
        for table in by_key:
            t = table.get(e.get("ref_key", e["key"]))  # a variant (recompute on/off) against the same work
            if t is None:
                row += ["-", "-", "-", "-"]
            elif "error" in t:
                row += [t["error"][:40], "-", "-", "-"]
            else:
                mem = (e.get("peak_memory_bytes") or 0) / t["peak_memory_bytes"] if t.get("peak_memory_bytes") else None
                ratio = "-" if "error" in e else f"{t['seconds'] / e['seconds']:.2f}"
                row += [f"{t['seconds']:.4f}", mib(t.get("peak_memory_bytes")), ratio,
                        "-" if mem is None or "error" in e else f"{mem:.2f}"]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
