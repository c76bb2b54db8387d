#!/usr/bin/env bash
# The whole recipe of the default pretrained model, stacks32_slot_diffusion_wide, from nothing:
#   1. EMORL alone on procedural 32-px stacks (the quickstart preset, K = SLOTS slots);
#   2. the LOM stage on that EMORL, frozen, with SRI's LSTM slot prior; the LOM decoder is a
#      copy of EMORL's and stays frozen too (docs/training.md, "Two stages");
#   3. the same LOM, its decoder thawed, at a lower learning rate (--init-from stage 2);
#   4. a diffusion slot prior fitted afterwards to stage 3's aggregate posterior
#      (lom-pyro fit-prior; docs/priors.md), written as a pretrained file.
# Each stage resumes where it stopped, and a finished stage is skipped, so the script can be
# run again and again in sessions of MINUTES minutes until it prints "done". Raising a stage's
# step count and running it again extends that stage; the fitted prior, once written, is kept
# (delete OUT/slot_diffusion_wide.pt to fit it again on the extended LOM).
#
#   examples/stacks32_from_scratch.sh runs/stacks32_from_scratch
#   MINUTES=150 SLOTS=8 examples/stacks32_from_scratch.sh runs/stacks32_k8
#
# The defaults are the shipped model's: about 10 hours on 2 CPU cores in all. Its stage 2 and
# 3 ran with --steps 100000 and were stopped by hand at 8,141 and 8,774 steps; here those are
# the step counts. Environment (default): SLOTS (6), EMORL_STEPS (12000), LOM_STEPS (8141),
# DECODER_STEPS (8774), BATCH (32), FIT_STEPS (25000), SCENES (49152), HELD_OUT (1024),
# REPORT_SAMPLES (500), THREADS (2), MINUTES (no limit: the wall time this call may take),
# EMORL_DIR (OUT/emorl: another folder to take or continue stage 1 from), PYTHON (python3),
# TRAIN_FLAGS (more `lom-pyro train` flags for a new stage, e.g. "--eval-scenes 64").
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

lom_pyro() { "$PYTHON" -m lom_pyro "$@"; }

minutes_left() {   # whole minutes of this call's budget, at least 1 (a stage stops cleanly)
    local left=$(( (DEADLINE - SECONDS) / 60 ))
    echo $(( left > 0 ? left : 1 ))
}

out_of_time() {
    if (( SECONDS >= DEADLINE )); then
        echo "stopped: MINUTES are up; run the same command again to go on" >&2
        exit 0
    fi
}

steps_done() {   # the steps a run folder's last stop had reached, 0 if it has none
    "$PYTHON" -c 'import json, sys, pathlib
p = pathlib.Path(sys.argv[1]) / "metrics.json"
print(json.loads(p.read_text())["steps"] if p.is_file() else 0)' "$1"
}

# train_stage DIR STEPS FLAGS...: start the stage (FLAGS) or resume it, then stop the script
# unless it reached STEPS
train_stage() {
    local dir=$1 steps=$2
    shift 2
    out_of_time
    if [[ -f $dir/checkpoint.pt ]]; then
        # --steps too: a larger STEPS than the stage was started with extends it
        lom_pyro train --resume "$dir" --steps "$steps" --max-minutes "$(minutes_left)" || [[ $? == 3 ]]
    else
        lom_pyro train --preset quickstart --steps "$steps" --batch-size "$BATCH" --threads "$THREADS" \
            --max-minutes "$(minutes_left)" --out "$dir" "$@" ${TRAIN_FLAGS[@]+"${TRAIN_FLAGS[@]}"} \
            || [[ $? == 3 ]]
    fi
    if (( $(steps_done "$dir") < steps )); then
        echo "stopped in $dir at step $(steps_done "$dir") of $steps; run the same command again to go on" >&2
        exit 0
    fi
}

EMORL_KWARGS=$(printf '{"num_slots": %d, "slot_dim": 32, "stochastic_layers": 2, "refinement_steps": 1, "sigma": 0.1, "init_gain": 1.0, "encoder_width": 32, "decoder_hidden": 32, "prior_hidden": 64, "refinement_hidden": 64}' "$SLOTS")
LOM_KWARGS='{"scene_dim": 32, "slot_prior": "lstm"}'

train_stage "$EMORL_DIR" "$EMORL_STEPS" --no-lom --orderless-kwargs "$EMORL_KWARGS" \
    --checkpoint-every 100 --figure-every 1000 --eval-every 1000

# the orderless kwargs again: EMORL's weights fit any K, so without them the LOM would take
# the preset's K and load the K = SLOTS checkpoint without complaint
FROZEN=(--orderless-kwargs "$EMORL_KWARGS" --orderless-checkpoint "$EMORL_DIR/checkpoint.pt" --freeze-orderless
        --lom-decoder-init orderless --lom-kwargs "$LOM_KWARGS" --checkpoint-every 250 --eval-every 500)
train_stage "$OUT/lom_frozen_decoder" "$LOM_STEPS" "${FROZEN[@]}" --lom-decoder-frozen-steps "$LOM_STEPS"
train_stage "$OUT/lom" "$DECODER_STEPS" "${FROZEN[@]}" --init-from "$OUT/lom_frozen_decoder/checkpoint.pt" \
    --lr 3e-4

PRIOR=$OUT/slot_diffusion_wide.pt
if [[ ! -f $PRIOR ]]; then
    out_of_time
    lom_pyro fit-prior "$OUT/lom/checkpoint.pt" --prior slot_diffusion --options '{"width": 256, "depth": 4}' \
        --scenes "$SCENES" --held-out "$HELD_OUT" --steps "$FIT_STEPS" --ema 0.9995 --threads "$THREADS" \
        --report-samples "$REPORT_SAMPLES" --cache "$OUT/posterior_cache.pt" --max-minutes "$(minutes_left)" \
        --out "$PRIOR"
    if [[ ! -f $PRIOR ]]; then
        echo "stopped while fitting the slot prior; run the same command again to go on" >&2
        exit 0
    fi
fi
echo "done: $PRIOR (sample it with: lom-pyro sample --pretrained $PRIOR --out $OUT/samples)"
