#!/bin/bash
# GPU state before or after the model (madengine packaged pre/post-script): prints the output of amd-smi,
# rocm-smi or nvidia-smi, whichever is present, or a clear "not available". Usage: bash gpu_info.sh before|after
echo "==== GPU info (${1:-now}) ===="
if command -v amd-smi >/dev/null 2>&1; then
  amd-smi metric --usage --power --mem-usage --temperature 2>&1 | head -200
elif command -v rocm-smi >/dev/null 2>&1; then
  rocm-smi --showuse --showpower --showmemuse --showtemp 2>&1 | head -200
elif command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi 2>&1 | head -200
else
  echo "GPU info: not available (no amd-smi, rocm-smi or nvidia-smi in this container)"
fi
exit 0
