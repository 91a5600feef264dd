#!/usr/bin/env bash
# Session 12: the six-method reports of the held-out sets (results A.2u) and the default against the authors' Ballot.
# usage: session12_compare_heldout.sh SET ...   (synthetic young cifar10_lt10 male smiling attractive)
cd /work/main && source .venv/bin/activate
for s in "$@"; do
  case $s in synthetic) n=heldout_synthetic;; young) n=heldout_celeba_young;; cifar10_lt10) n=heldout_cifar10_lt10;;
    male) n=heldout_celeba_male_label;; smiling) n=heldout_celeba_smiling;; attractive) n=heldout_celeba_attractive;; esac
  PYTHONPATH=. python -m experiments.compare --run lth=/work/runs/s11_$s:lth --run magnitude=/work/runs/s11_$s:magnitude \
    --run safecompress=/work/runs/s12_${s}_others:safecompress --run fairscratch=/work/runs/s12_${s}_others:fairscratch \
    --run ballot_authors=/work/runs/s12_${s}_others:ballot_authors --run ballot=/work/runs/s11_$s:ballot \
    --against ballot,ballot_authors --bar lth,magnitude --out docs/results/${n}_all_methods_session12.md > /dev/null
  PYTHONPATH=. python -m experiments.compare --run ballot_authors=/work/runs/s12_${s}_others:ballot_authors \
    --run ballot=/work/runs/s11_$s:ballot --against ballot --out /tmp/${s}_vs_authors.md > /dev/null
  echo "== $s"; grep "Cells met" docs/results/${n}_all_methods_session12.md
  grep -E "^\| ballot vs (safecompress|fairscratch|ballot_authors)" docs/results/${n}_all_methods_session12.md /tmp/${s}_vs_authors.md | cut -d'|' -f2-6
done
