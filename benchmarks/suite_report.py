"""Collect the JSON files of a benchmark suite run (``benchmarks/gpu_suite.sh``) into one summary.

    python -m benchmarks.suite_report DIR

Reads every ``DIR/*.json`` written by a benchmark's ``--json`` (files it does not recognise are
listed, not read), and writes ``DIR/summary.json`` (the headline figure of each benchmark, plus
the environment of the first file) and ``DIR/summary.md`` (the same as a Markdown table, then the
last table each benchmark printed). Prints the Markdown. Needs no JAX.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec) if isinstance(x, (int, float)) else str(x)


def headline(name: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(benchmark, figure, value)`` rows for one benchmark's JSON."""
    if data.get("skipped"):
        return [(name, "skipped", data["skipped"])]
    rows: list[tuple[str, str, str]] = []
    bench = data.get("benchmark", name)
    if bench == "masked_step":
        rows += [(bench, f"masked/dense {k}", _fmt(v)) for k, v in data.get("masked_over_dense", {}).items()]
    elif bench == "sharded_step":
        rows.append((bench, "params match 1 device", "PASS" if data.get("passed") else "FAIL"))
        for label, m in data.get("measurements", {}).items():
            for count, v in m.get("devices", {}).items():
                rows.append((bench, f"{label} {count} dev / 1 dev", _fmt(v.get("ratio"))))
    elif bench == "conflict":
        for label, m in data.get("measurements", {}).items():
            for variant, v in m.get("variants", {}).items():
                if variant != "one_grad":
                    rows.append((bench, f"{label} {variant}/one_grad", _fmt(v.get("ratio"))))
    elif bench == "loop":
        for label, m in data.get("measurements", {}).items():
            for variant in ("loop", "loop_host_batches", "loop_bound2"):
                v = m.get("variants", {}).get(variant)
                if v:
                    rows.append((bench, f"{label} {variant}/bare", _fmt(v.get("ratio"))))
    elif bench == "vs_torch":
        device = data.get("setup", {}).get("device", "?")
        rows.append((bench, "one-step check", "PASS" if data.get("passed") else "FAIL"))
        rows += [(bench, f"{k} ballot_jax/torch ({device})", _fmt(v)) for k, v in data.get("ballot_jax_over_torch", {}).items()]
    elif bench == "train_throughput":
        r = data.get("result", {})
        tag = f"{r.get('model')} b{r.get('batch_size')}"
        rows += [
            (bench, f"{tag} images/s", _fmt(r.get("images_per_s"), ".1f")),
            (bench, f"{tag} bare-step images/s", _fmt(r.get("bare_step_images_per_s"), ".1f")),
            (bench, f"{tag} GFLOP/image (XLA count)", _fmt(r.get("xla_flops_per_image") and r["xla_flops_per_image"] / 1e9)),
            (bench, f"{tag} TFLOP/s achieved", _fmt(r.get("achieved_tflops_xla_count"), ".2f")),
            (bench, f"{tag} fraction of bf16 peak (XLA count)", _fmt(r.get("fraction_of_bf16_peak_xla_count"), ".4f")),
            (bench, f"{tag} fraction of bf16 peak (3 x 0.56 GFLOP/img)", _fmt(r.get("fraction_of_bf16_peak_nominal"), ".4f")),
        ]
    elif bench == "maxpool":
        rows.append((bench, "identical results", "yes" if data.get("identical") else "NO"))
        for case, m in data.get("measurements", {}).items():
            rows.append((bench, f"{case} custom/flax", _fmt(m.get("custom", {}).get("ratio"))))
    elif bench == "end_to_end":
        for i, run in enumerate(data.get("runs", []), start=1):
            rows.append((bench, f"run {i} wall s (exit {run.get('returncode')})", _fmt(run.get("wall_s"), ".1f")))
            rows.append((bench, f"run {i} train s", _fmt(run.get("train_time_s"), ".1f")))
    else:  # e.g. the suite's own records: every top-level number
        rows += [(bench, k, _fmt(v, ".2f")) for k, v in data.items() if isinstance(v, (int, float))
                 and not isinstance(v, bool)]
    if not rows:
        rows.append((bench, "(no headline figure)", ""))
    return rows


def last_table(data: dict[str, Any]) -> str | None:
    table = data.get("table")
    if not table:
        return None
    head, body = table["headers"], table["rows"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = pathlib.Path(argv[0])
    files = sorted(p for p in out.glob("*.json") if p.name != "summary.json")
    rows, tables, env, unreadable = [], [], None, []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            unreadable.append(path.name)
            continue
        if not isinstance(data, dict) or not ("benchmark" in data or "skipped" in data):
            unreadable.append(path.name)
            continue
        env = env or data.get("environment")
        rows += headline(path.stem, data)
        t = last_table(data)
        if t:
            tables.append((path.stem, t))
    md = ["# Benchmark suite summary", ""]
    if env:
        md += [f"{env.get('date')} -- backend {env.get('backend')}, devices {', '.join(env.get('device_kinds', []))}, "
               f"jax {env.get('jax')}, commit {env.get('git_commit')}", ""]
    md += ["| benchmark | figure | value |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    for name, t in tables:
        md += ["", f"## {name}", "", t]
    if unreadable:
        md += ["", "Not read: " + ", ".join(unreadable)]
    text = "\n".join(md) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(
        {"environment": env, "figures": [{"benchmark": a, "figure": b, "value": c} for a, b, c in rows],
         "not_read": unreadable}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
