#!/bin/bash
#SBATCH --job-name=madengine-dummy
#SBATCH --output=<RUN>/dummy/slurm-%j.out
#SBATCH --error=<RUN>/dummy/slurm-%j.err
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
set -euo pipefail

# ---- environment: modules, then the context's env_vars (exported in the job and passed on to the model)

# ---- the distributed contract, from Slurm's own variables (per-node values are set inside the step below)
MAD_NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST")
export MASTER_ADDR=$(printf '%s\n' "$MAD_NODES" | head -n 1)
export MAD_NODE_HOSTS=$(printf '%s\n' "$MAD_NODES" | paste -sd, -)
export MASTER_PORT=6006
export NNODES=$SLURM_JOB_NUM_NODES
export GPUS_PER_NODE=8
export WORLD_SIZE=$(( NNODES * (GPUS_PER_NODE > 0 ? GPUS_PER_NODE : 1) ))
export MAD_DEPLOYMENT_TYPE=slurm
export MAD_NNODES=$NNODES
export MAD_GPUS_PER_NODE=$GPUS_PER_NODE

# ---- workspace: the job directory on shared storage holds the manifest, the context and results/<node>/
export MAD_JOB_DIR=<RUN>/dummy
export MAD_HUB=<HUB>
export MAD_PYTHON=<PYTHON>
export MAD_SCRATCH=''
mkdir -p "$MAD_JOB_DIR/results"
echo "madengine: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: MASTER_ADDR=$MASTER_ADDR NNODES=$NNODES GPUS_PER_NODE=$GPUS_PER_NODE"

# ---- one step, one task per node: the same local workflow (`madengine run.local`) on every node
mad_node_step() {
    set -euo pipefail
    export NODE_RANK=$SLURM_NODEID RANK=$SLURM_PROCID LOCAL_RANK=${SLURM_LOCALID:-0}
    local node=${SLURMD_NODENAME:-$(hostname -s)}
    local results="$MAD_JOB_DIR/results/$node"
    local work="$results"
    if [ -n "$MAD_SCRATCH" ]; then work="$MAD_SCRATCH/madengine-$SLURM_JOB_ID-$node"; fi
    mkdir -p "$results" "$work"
    echo "$NODE_RANK" > "$results/node_rank"
    cp "$MAD_JOB_DIR/build_manifest.json" "$work/build_manifest.json"
    # The model sees the contract too: pass this node's values into its container (or native process).
    "$MAD_PYTHON" -c 'import json, os, sys
names = ["MASTER_ADDR", "MAD_NODE_HOSTS", "MASTER_PORT", "NNODES", "NODE_RANK", "RANK", "LOCAL_RANK", "WORLD_SIZE",
         "GPUS_PER_NODE",
         "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NODEID",
         "SLURM_PROCID", "MAD_DEPLOYMENT_TYPE"]
env = {n: os.environ[n] for n in names if n in os.environ}
json.dump({"docker_env_vars": env}, open(sys.argv[1], "w"))' "$work/node-context.json"
    echo "madengine: node $node NODE_RANK=$NODE_RANK RANK=$RANK work=$work"
    cd "$work"
    "$MAD_PYTHON" -m madengine run.local --manifest-file "$work/build_manifest.json" --hub "$MAD_HUB" \
        --output "$results/perf.csv" --summary-output "$results/run-summary.json" --results-db none \
        --additional-context-file "$work/node-context.json"
}
export -f mad_node_step
srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=0 bash -c mad_node_step
