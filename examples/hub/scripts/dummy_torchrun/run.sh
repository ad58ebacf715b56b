#!/bin/bash
# A tiny DDP training run through the launcher madengine renders (context: "launcher": "torchrun").
# $MAD_MULTI_NODE_RUNNER is the torchrun command prefix for this node (madengine v1's multi_node_args contract),
# e.g. `torchrun --nnodes 2 --nproc_per_node 2 --node_rank 1 --master_addr n1 --master_port 29500`.
set -euo pipefail
RUNNER=${MAD_MULTI_NODE_RUNNER:-torchrun --standalone --nproc_per_node 1}
echo "dummy_torchrun: launcher=${MAD_LAUNCHER:-none} strategy=${MAD_LAUNCHER_STRATEGY:-none}" \
     "NNODES=${NNODES:-1} NODE_RANK=${NODE_RANK:-0} MASTER_ADDR=${MASTER_ADDR:-localhost} WORLD_SIZE=${WORLD_SIZE:-1}"
echo "dummy_torchrun: $RUNNER train_ddp.py $*"
# eval: the runner's values are shell-quoted by madengine; the model's own args are re-quoted here.
args=""
if [ $# -gt 0 ]; then args=$(printf '%q ' "$@"); fi
eval "$RUNNER train_ddp.py $args"
