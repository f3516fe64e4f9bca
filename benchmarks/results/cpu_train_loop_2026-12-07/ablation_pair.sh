#!/bin/bash
for tree in old new old new; do
  W=/work/main; [ $tree = old ] && W=/tmp/old-wt
  n=$((${n:-0}+1))
  s=$(date +%s.%N)
  (cd $W && PYTHONPATH=$W python -m jna_fast.ablate --out /work/runs/pair_${tree}_$n --variants tsn,jna --seeds 1 --jobs 2 > /work/runs/pair_${tree}_$n.log 2>&1)
  e=$(date +%s.%N)
  echo "$tree $n $(echo "$e - $s" | bc)" >> /work/runs/pair_times.txt
done
