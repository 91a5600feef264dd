#!/usr/bin/env bash
# Session 12: SafeCompress, FairScratch (the authors' presets) and the authors' Ballot on the sets named, in new
# workdirs /work/runs/s12_<SET>_others seeded with the session-11 dense phases (the same seeds' level 0 as LTH,
# Magnitude and the default). Held-out sets are reported only; nothing is chosen on them.
# usage: session12_others.sh SET ...   (results A.2t: blond wavy cifar10; A.2u: synthetic young cifar10_lt10 male smiling attractive)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
cd /work/main && source .venv/bin/activate
source "$HERE/set_command.sh"
for SET in "$@"; do
  CMD=$(set_command "$SET")
  DST=/work/runs/s12_${SET}_others; mkdir -p "$DST"
  for s in 0 1 2 3 4; do mkdir -p "$DST/seed_$s"; [ -d "$DST/seed_$s/dense" ] || cp -a /work/runs/s11_$SET/seed_$s/dense "$DST/seed_$s/"; done
  date; echo "== $SET"
  python -m $CMD --workdir "$DST" --config.methods=safecompress,fairscratch,ballot_authors 2>&1 \
    | grep --line-buffered "\[experiments\].*test acc"
done
date
