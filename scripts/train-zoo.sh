#!/bin/sh
# The model zoo's training recipe (docs/model-zoo.md): every architecture gets the same budget of 24,000 images
# on the same data — 16,000 at 128² (4,000 steps of 4), then 8,000 at 256² (2,000 steps of 4, the learning
# rates falling linearly to 0 over the last 1,000) from the first stage's weights — and is exported and scored
# the same way. The data is the default model's v2 mix (30% painted layouts, 20% free styles, 25% crops of 2×
# renders) from two shard caches rendered once and shared by every run.
#
#   sh scripts/train-zoo.sh ARCH [STAGE]    ARCH: oasis | dp-gan | lggan | sc-gan | collage-base | spade
#                                           STAGE: all (default) | A (stage 1 only, then carried as
#                                           weights/landscape-ARCH/init.pt, for a session too short for
#                                           both) | B (stage 1 done, or carried) | export (both done)
#
# Run from the repository root with .venv set up (make dev). Each stage is a run folder of its own under
# runs/zoo-ARCH/{A,B}/; a stage stopped midway continues with `collage train --resume` on its folder, after
# which `sh scripts/train-zoo.sh ARCH B` (or `export`) goes on from where the recipe stands. The model lands
# in weights/landscape-ARCH with its eval merged into model.json. Hours of CPU per architecture: start it in
# the background (nohup nice …) and run nothing else heavy meanwhile.
set -eu

usage="usage: sh scripts/train-zoo.sh ARCH [all|A|B|export]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
arch=$1
stage=${2:-all}
# A misspelt stage would otherwise skip both trainings and go on to export whatever stage B's folder holds.
case $stage in all | A | B | export) ;; *) echo "unknown stage '$stage'; $usage" >&2; exit 2 ;; esac
collage=${COLLAGE:-.venv/bin/collage}
runs=runs/zoo-$arch
out=weights/landscape-$arch
# SPADE (spade-fast) on the same budget is the zoo's equal-budget reference; weights/landscape-spade is the
# default model, trained by its own longer recipe (weights/README.md), and never overwritten here.
[ "$arch" = spade ] && out=weights/landscape-spade-24k
mix="--painted 0.3 --free-styles 0.2 --large 0.25"
data="--data procedural --data_cache=runs/cache --data_length=4608 --data_seed=0 --data_painted=0.3
      --data_free_styles=0.2 --data_large=0.25"
common="--batch=4 --seed=0 --threads=2 --num_workers=1 --checkpoint_minutes=10 --precision=auto
        --channels_last=true --sample_every=250 --log_every=25"

only_run() {  # the one run folder a stage wrote
    set -- "$1"/*/
    [ $# -eq 1 ] && [ -d "$1" ] || { echo "expected one run folder in $runs, found: $*" >&2; exit 1; }
    echo "${1%/}"
}

for size in 128 256; do
    # shellcheck disable=SC2086  # word splitting of the flag lists is wanted
    $collage data cache --length 4608 --size $size --seed 0 --dir runs/cache --workers 2 $mix
done
if [ "$stage" = all ] || [ "$stage" = A ]; then
    # shellcheck disable=SC2086
    $collage train --arch "$arch" $data $common --size=128 --steps=4000 --runs-dir "$runs/A"
fi
if [ "$stage" = A ]; then
    # Run folders do not outlive a machine: G, its EMA and D go on to the next one in float16 (stage B starts
    # with fresh optimisers anyway, so only the rounding differs from running both stages in one go).
    first=$(only_run "$runs/A")
    $collage slim "$first" --out "$out/init.pt"
    exit 0
fi
if [ "$stage" = all ] || [ "$stage" = B ]; then
    # Stage A's run folder, or, on a machine where it never ran, stage A carried as `collage slim` to
    # $out/init.pt (stage B starts from A's weights with fresh optimisers either way).
    if [ ! -d "$runs/A" ] && [ -f "$out/init.pt" ]; then
        first=$out/init.pt
    else
        first=$(only_run "$runs/A")  # an assignment, so set -e stops here when the folder is not one run
    fi
    # shellcheck disable=SC2086
    $collage train --arch "$arch" $data $common --size=256 --steps=2000 --lr_decay_start=1000 \
        --lr_decay_steps=1000 --init_from "$first" --runs-dir "$runs/B"
fi
second=$(only_run "$runs/B")
$collage export "$second" --out "$out" --size 256
$collage eval "$out" --n 500 --layouts both
