#!/bin/bash
# C-DSVAE learning-rate screen on one GPU, plus a GPU check of every method and metric (smoke profile).
#
# Runs beside each other, each job cut at JOBTIME seconds (a cut job keeps its partial learning curve):
#   C-DSVAE quick protocol on synthetic-sprites, lr 1e-3 and 2e-3, seeds 0-2 (8000 steps)
#   C-DSVAE quick protocol on the real Sprites (32 px), lr 1e-3, seeds 0-2 (12000 steps)
#   seqbench run --profile smoke --device cuda: every video method x judge,leak,mse,akd,aed,size; speech x eer,leak,mse,size
# in fp32 (sitecustomize.py here turns cuDNN's TF32 off), without MLflow (the device image has none), from a
# checkout that is not installed (the package is assembled under /tmp). Result: OUTDIR/screen.tgz with every
# run's results.jsonl and every model's meta/history; `python benchmarks/device/summarise_screen.py DIR` reads it.
# Measured on an H200 (2026-12-04, MPS on): the six synthetic runs trained 8000 steps in ~380 s each, side by side.
#
# Usage (repository root): LPC=../shared/data/lpc-sprites JOBTIME=420 bash benchmarks/device/cdsvae_lr_screen.sh OUTDIR
set -u
OUT=$(realpath -m "${1:-/tmp/screen-out}"); mkdir -p "$OUT"
PROFILE=${PROFILE:-quick}; DEVICE=${DEVICE:-cuda}; JOBTIME=${JOBTIME:-420}; PY=${PY:-python3}
REPO=$PWD; LPC=$(realpath -m "${LPC:-../shared/data/lpc-sprites}")
SRC=/tmp/seqbench-src; rm -rf $SRC; mkdir -p $SRC; cp -r seqbench $SRC/
for p in methods metrics datasets; do rm -rf $SRC/seqbench/$p; cp -r $p $SRC/seqbench/$p; done  # pyproject's package-dir
cd /tmp  # python -m puts the cwd first on sys.path: run beside, not inside, the checkout
export PYTHONPATH=$REPO/benchmarks/device:$SRC PYTHONUNBUFFERED=1 SEQBENCH_DISABLE_PLUGIN_AUTOLOAD=1
export SEQBENCH_CACHE=${SEQBENCH_CACHE:-/tmp/seqbench-screen-cache}
W=/tmp/seqbench-screen; rm -rf $W; mkdir -p $W
T0=$(date +%s)
( nvidia-smi; $PY -c "import torch, seqbench.methods.cdsvae as m; print('torch', torch.__version__, torch.cuda.is_available(), 'tf32 conv', torch.backends.cudnn.allow_tf32, m.__file__)"; nproc ) > $OUT/env.txt 2>&1
nvidia-cuda-mps-control -d >> $OUT/env.txt 2>&1 && echo "mps started" >> $OUT/env.txt  # many small processes share the GPU
$PY -m seqbench data prepare synthetic-sprites --data-option size=32 > $W/prepare.log 2>&1
[ -d "$LPC" ] && $PY -m seqbench data prepare sprites --source $LPC >> $W/prepare.log 2>&1
echo "prepared $(( $(date +%s)-T0 )) s" >> $OUT/env.txt
job() {  # name dataset seed lr [extra args]
  local name=$1 ds=$2 seed=$3 lr=$4; shift 4
  ( OMP_NUM_THREADS=1 timeout $JOBTIME $PY -m seqbench run --methods cdsvae --seeds $seed --dataset $ds \
      --metrics judge,leak,mse --profile $PROFILE --device $DEVICE --set cdsvae.lr=$lr --no-progress --no-visuals \
      -p no:mlflow_plugin -o $W/$name "$@" > $W/$name.log 2>&1; echo "rc=$? t=$(( $(date +%s)-T0 ))" >> $W/$name.log ) &
}
for seed in 0 1 2; do for lr in 1e-3 2e-3; do job syn-lr$lr-s$seed synthetic-sprites $seed $lr; done; done
[ -d "$LPC" ] && for seed in 0 1 2; do job spr-lr1e-3-s$seed sprites $seed 1e-3 --data-option sprites.size=32; done
( timeout 300 $PY -m seqbench run --methods dbse,spyl,cdsvae,divid,diffsda,vidtwin,bcd --metrics judge,leak,mse,akd,aed,size \
    --profile smoke --device $DEVICE --no-progress -p no:mlflow_plugin -o $W/smoke-video > $W/smoke-video.log 2>&1
  echo "rc=$? t=$(( $(date +%s)-T0 ))" >> $W/smoke-video.log
  timeout 120 $PY -m seqbench run --methods dbse,spyl,cdsvae,diffsda --dataset synthetic-speech --metrics eer,leak,mse,size \
    --profile smoke --device $DEVICE --no-progress -p no:mlflow_plugin -o $W/smoke-speech > $W/smoke-speech.log 2>&1
  echo "rc=$? t=$(( $(date +%s)-T0 ))" >> $W/smoke-speech.log ) &
( while sleep 30; do echo "--- t=$(( $(date +%s)-T0 ))"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  for f in $W/*.log; do echo "$(basename $f): $(tail -n 1 $f)"; done; done ) > $OUT/progress.txt 2>&1 &
MON=$!
wait $(jobs -p | grep -v "^$MON$") 2>/dev/null
kill $MON 2>/dev/null
echo "all done $(( $(date +%s)-T0 )) s" >> $OUT/env.txt
$PY $REPO/benchmarks/device/collect.py $SEQBENCH_CACHE $W >> $OUT/env.txt 2>&1
tar czf $OUT/screen.tgz -C $W . && echo "tar ok $(( $(date +%s)-T0 )) s" >> $OUT/env.txt
