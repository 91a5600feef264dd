"""Wall time of the embedded default experiment, end to end: ``python -m experiments.digits``.

Each repetition runs the experiment as a fresh subprocess in a fresh, empty work directory (the
experiments are resumable: a second run in the same directory would skip the finished work), so
the time includes interpreter start-up, imports, data loading, compilation, training, pruning,
evaluation and checkpointing. Arguments this script does not know -- ``--config.*`` overrides --
are passed through to the experiment unchanged, e.g.

    python -m benchmarks.end_to_end --config.train.steps=100

Reported per run: wall seconds, and the sum of ``train_time_s`` over the ``record.json`` files the
run wrote (if it wrote any), i.e. the part spent in training loops.

    python -m benchmarks.end_to_end [--repeats N] [--json PATH] [--keep] [--timeout S] [--config.X=V ...]
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks import common

MODULE = "experiments.digits"


def module_available(module: str | None = None) -> bool:
    """Whether ``python -m module`` (default ``MODULE``) can run from the repository root."""
    module = module or MODULE
    root = str(common.REPO_ROOT)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package is missing
        return False
    finally:
        if added:
            sys.path.remove(root)


def train_time(workdir: pathlib.Path) -> tuple[float | None, int]:
    """Sum of ``train_time_s`` over the run's ``record.json`` files, and how many there were."""
    total, found = 0.0, 0
    for path in sorted(workdir.rglob("record.json")):
        try:
            value = json.loads(path.read_text()).get("train_time_s")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)):
            total += float(value)
            found += 1
    return (total if found else None), found


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.split("\n\n")[0], repeats=1)
    parser.add_argument("--workdir", default=None, help="parent directory for the runs' work directories "
                        "(default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' work directories")
    parser.add_argument("--timeout", type=float, default=None, help="give up on a run after this many seconds")
    args, passthrough = parser.parse_known_args(argv)
    common.check_args(args)
    # --quick only makes compilation cheaper (via XLA_FLAGS, inherited by the experiment); the
    # experiment's size is set by its own config, so pass --config.* overrides to shrink it.
    if args.quick:
        print("note: --quick only makes XLA compile cheaply; shrink the run with --config.* overrides",
              file=sys.stderr)
    unknown = [a for a in passthrough if a.startswith("-") and not a.startswith("--config")]
    if unknown:
        print(f"note: passing unrecognised arguments through to {MODULE}: {unknown}", file=sys.stderr)

    if not module_available():
        print(
            f"error: the experiment module {MODULE!r} does not exist yet (looked from {common.REPO_ROOT}).\n"
            f"This benchmark runs `python -m {MODULE} --workdir <tmp> [--config.* overrides]`; "
            "add the experiment first.",
            file=sys.stderr,
        )
        return 2

    parent = pathlib.Path(args.workdir) if args.workdir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    rows = []
    for i in range(args.repeats):
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="ballot_e2e_", dir=parent))
        cmd = [sys.executable, "-m", MODULE, "--workdir", str(workdir), *passthrough]
        print(f"[run {i + 1}/{args.repeats}] {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            # The experiment's own output goes to stderr, so stdout ends with this benchmark's table.
            proc = subprocess.run(cmd, cwd=common.REPO_ROOT, stdout=sys.stderr, timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
        wall = time.perf_counter() - t0
        train_s, records = train_time(workdir)
        runs.append({"command": cmd, "workdir": str(workdir), "returncode": rc, "wall_s": wall,
                     "train_time_s": train_s, "records": records})
        rows.append([i + 1, f"{wall:.1f}", "-" if train_s is None else f"{train_s:.1f}", records,
                     "timeout" if rc is None else rc])
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if rc != 0:
            print(f"error: run {i + 1} " + ("timed out" if rc is None else f"exited with status {rc}"),
                  file=sys.stderr)
            break

    ok = all(r["returncode"] == 0 for r in runs)
    walls = [r["wall_s"] for r in runs if r["returncode"] == 0]
    notes = [f"end_to_end: `python -m {MODULE}` in a fresh work directory per run"
             + (f", overrides: {' '.join(passthrough)}" if passthrough else ", default config") + "."]
    if walls:
        s = common.summarize(walls)
        notes.append(f"wall time: median {s['median_s']:.1f} s over {len(walls)} run(s)"
                     + (f", IQR {s['iqr_s']:.1f} s" if len(walls) > 1 else ""))
    common.finish(
        args,
        "end_to_end",
        ["run", "wall s", "train s", "records", "exit"],
        rows,
        {"module": MODULE, "passthrough": passthrough, "runs": runs,
         "wall_summary": common.summarize(walls) if walls else None},
        notes,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
