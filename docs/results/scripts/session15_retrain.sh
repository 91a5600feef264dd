#!/usr/bin/env bash
# Session 15: session12_retrain.sh on session 15's workdirs, with CODE_DIR's code: copy /work/runs/s15_<SET>
# to /work/runs/s15_<SET>__<VARIANT>, delete Ballot's records, chosen μ and μ > 0 candidates, retrain them.
# usage: session15_retrain.sh CODE_DIR SET VARIANT [--config.ballot.* ...]   (CODE_DIR: a checkout of this
# commit or later, e.g. a `git worktree` frozen while the library is edited)
set -e
CODE=$1; shift
CODE="$CODE" FROM=s15 TO=s15 exec bash "$CODE/docs/results/scripts/session12_retrain.sh" "$@"
