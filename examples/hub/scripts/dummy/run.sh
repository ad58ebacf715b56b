#!/bin/bash
# Example benchmark: prints a little training-like output and one performance line (MAD's contract).
set -e
echo "model: ${MAD_MODEL_NAME}  gpus: ${MAD_RUNTIME_NGPUS}  args: $*"
env | grep '^EXAMPLE_' | sort || true   # context docker_env_vars named EXAMPLE_* show up here
for step in 1 2 3; do echo "step ${step}/3 loss=0.$((RANDOM % 90 + 10))"; done
echo "performance: $((RANDOM % 500 + 1000)).$((RANDOM % 10)) samples_per_second"
