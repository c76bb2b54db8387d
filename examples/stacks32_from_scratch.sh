#!/usr/bin/env bash
# The recipe of the default pretrained model, stacks32_slot_diffusion_wide, from nothing:
#   1. EMORL alone on procedural 32-px stacks (the quickstart preset, K = SLOTS slots);
#   2. the LOM stage on that EMORL, frozen, with SRI's LSTM slot prior; the LOM decoder is a
#      copy of EMORL's and stays frozen too (docs/training.md, "Two stages");
#   3. the same LOM, its decoder thawed, at a lower learning rate (--init-from stage 2);
#   4. a diffusion slot prior fitted afterwards to stage 3's aggregate posterior
#      (lom-pyro fit-prior; docs/priors.md), written as a pretrained file.
# Each stage resumes where it stopped and a finished stage is skipped, so the script can be
# run again and again in sessions of MINUTES minutes until it prints "done" (exit 0; a stop
# before that exits 3). Raising a stage's step count and running it again extends that stage
# and leaves the later stages as they are; to fit the prior again, delete
# OUT/slot_diffusion_wide.pt, OUT/slot_diffusion_wide.state.pt and OUT/posterior_cache.pt.
#
#   examples/stacks32_from_scratch.sh runs/stacks32_from_scratch
#   MINUTES=150 SLOTS=8 examples/stacks32_from_scratch.sh runs/stacks32_k8
#
# The defaults are the shipped model's: about 10 hours on 2 CPU cores in all. Its stages 2
# and 3 ran with --steps 100000 and were stopped by hand at 8,141 and 8,774 steps; here those
# are the step counts. Environment (default): SLOTS (6), EMORL_STEPS (12000), LOM_STEPS (8141),
# DECODER_STEPS (8774), BATCH (32), FIT_STEPS (25000), SCENES (49152), HELD_OUT (1024),
# REPORT_SAMPLES (500), THREADS (2), MINUTES (whole minutes this call may take; no limit),
# EMORL_DIR (OUT/emorl: another folder to take or continue stage 1 from), PYTHON (python3),
# TRAIN_FLAGS (more `lom-pyro train` flags for a new stage, e.g. "--eval-scenes 64").
# SLOTS and BATCH are fixed when a stage starts; a stage begun with another K is refused.
set -euo pipefail

OUT=${1:?usage: $0 OUT_FOLDER (and optionally SLOTS, MINUTES, ... in the environment)}
SLOTS=${SLOTS:-6}
EMORL_STEPS=${EMORL_STEPS:-12000}
LOM_STEPS=${LOM_STEPS:-8141}
DECODER_STEPS=${DECODER_STEPS:-8774}
BATCH=${BATCH:-32}
FIT_STEPS=${FIT_STEPS:-25000}
SCENES=${SCENES:-49152}
HELD_OUT=${HELD_OUT:-1024}
REPORT_SAMPLES=${REPORT_SAMPLES:-500}
THREADS=${THREADS:-2}
EMORL_DIR=${EMORL_DIR:-$OUT/emorl}
PYTHON=${PYTHON:-python3}
read -r -a TRAIN_FLAGS <<< "${TRAIN_FLAGS:-}"
DEADLINE=$(( SECONDS + ${MINUTES:-1000000} * 60 ))
STOPPED=3

lom_pyro() { "$PYTHON" -m lom_pyro "$@"; }

minutes_left() {   # whole minutes of this call's budget, at least 1 (a stage stops cleanly)
    local left=$(( (DEADLINE - SECONDS) / 60 ))
    echo $(( left > 0 ? left : 1 ))
}

stop() {
    echo "stopped: $1; run the same command again to go on" >&2
    exit "$STOPPED"
}

json_field() {   # json_field FILE KEY...: the value at those keys of a JSON file
    "$PYTHON" -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[key]
print(value)' "$@"
}

# the quickstart preset's EMORL with K = SLOTS (--orderless-kwargs replaces the preset's whole dict)
EMORL_KWARGS=$("$PYTHON" -c 'import json, sys
from lom_pyro.training import config_from_preset
print(json.dumps({**config_from_preset("quickstart").orderless_kwargs, "num_slots": int(sys.argv[1])}))' "$SLOTS")

# train_stage DIR STEPS FLAGS...: start the stage with FLAGS, or resume it; go on only once it
# has reached STEPS
train_stage() {
    local dir=$1 steps=$2 rc=0 done_steps k
    shift 2
    (( SECONDS < DEADLINE )) || stop "MINUTES are up"
    if [[ -f $dir/config.json ]]; then
        k=$(json_field "$dir/config.json" orderless_kwargs num_slots)
        [[ $k == "$SLOTS" ]] || { echo "$dir was started with $k slots, not SLOTS=$SLOTS" >&2; exit 2; }
    fi
    if [[ -f $dir/checkpoint.pt ]]; then
        # --steps too: a larger STEPS than the stage was started with extends it
        lom_pyro train --resume "$dir" --steps "$steps" --max-minutes "$(minutes_left)" || rc=$?
    else
        lom_pyro train --preset quickstart --steps "$steps" --batch-size "$BATCH" --threads "$THREADS" \
            --max-minutes "$(minutes_left)" --out "$dir" "$@" ${TRAIN_FLAGS[@]+"${TRAIN_FLAGS[@]}"} || rc=$?
    fi
    (( rc == 0 )) || { (( rc == STOPPED )) && stop "$dir was interrupted"; exit "$rc"; }
    # exit 0: finished, or stopped when its minutes were up; metrics.json says which
    done_steps=$(json_field "$dir/metrics.json" steps)
    (( done_steps >= steps )) || stop "$dir is at step $done_steps of $steps"
}

# the LOM stages: on the frozen EMORL of stage 1, the LOM decoder a copy of EMORL's
LOM_FLAGS=(--orderless-kwargs "$EMORL_KWARGS" --orderless-checkpoint "$EMORL_DIR/checkpoint.pt" --freeze-orderless
           --lom-decoder-init orderless --lom-kwargs '{"scene_dim": 32, "slot_prior": "lstm"}'
           --checkpoint-every 250 --eval-every 500)

train_stage "$EMORL_DIR" "$EMORL_STEPS" --no-lom --orderless-kwargs "$EMORL_KWARGS" \
    --checkpoint-every 100 --figure-every 1000 --eval-every 1000
# frozen for any number of steps (as the shipped run's 100,000), so that extending it keeps it so
train_stage "$OUT/lom_frozen_decoder" "$LOM_STEPS" "${LOM_FLAGS[@]}" --lom-decoder-frozen-steps 1000000
train_stage "$OUT/lom" "$DECODER_STEPS" "${LOM_FLAGS[@]}" --init-from "$OUT/lom_frozen_decoder/checkpoint.pt" \
    --lr 3e-4

PRIOR=$OUT/slot_diffusion_wide.pt
if [[ ! -f $PRIOR ]]; then
    (( SECONDS < DEADLINE )) || stop "MINUTES are up"
    lom_pyro fit-prior "$OUT/lom/checkpoint.pt" --prior slot_diffusion --options '{"width": 256, "depth": 4}' \
        --scenes "$SCENES" --held-out "$HELD_OUT" --steps "$FIT_STEPS" --ema 0.9995 --threads "$THREADS" \
        --report-samples "$REPORT_SAMPLES" --cache "$OUT/posterior_cache.pt" --max-minutes "$(minutes_left)" \
        --out "$PRIOR"
    [[ -f $PRIOR ]] || stop "the slot prior's fit is not finished (its state: $OUT/slot_diffusion_wide.state.pt)"
fi
echo "done: $PRIOR (sample it with: lom-pyro sample --pretrained $PRIOR --out $OUT/samples)"
