#!/bin/bash
# GPU power/VRAM sampler (madengine packaged tool wrapper): samples while the wrapped command runs and writes
# gpu_info_<mode>_profiler_output.csv in the working directory. Usage: bash gpu_sampler.sh power|vram CMD...
# Env: MAD_SAMPLER_INTERVAL (seconds, default 1). Uses amd-smi or nvidia-smi when present, else records
# "unavailable" rows, so the file always exists. Exits with the wrapped command's status.
mode="${1:?mode power|vram}"; shift
out="gpu_info_${mode}_profiler_output.csv"
interval="${MAD_SAMPLER_INTERVAL:-1}"
sample() {
  local ts; ts=$(date +%s.%N)
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,power.draw,memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null \
      | while IFS=', ' read -r idx pw used total; do echo "$ts,$idx,$pw,$used,$total,nvidia-smi"; done
  elif command -v amd-smi >/dev/null 2>&1; then
    amd-smi metric --power --mem-usage --csv 2>/dev/null | tail -n +2 | awk -F, -v ts="$ts" \
      '{print ts "," $1 "," $2 "," $3 "," $4 ",amd-smi"}'
  else
    echo "$ts,,,,,unavailable"
  fi
}
echo "timestamp,gpu,power_w,vram_used_mib,vram_total_mib,source" > "$out"
( while :; do sample >> "$out"; sleep "$interval"; done ) &
sampler=$!
"$@"
rc=$?
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
sample >> "$out"
echo "gpu sampler ($mode): $(($(wc -l < "$out") - 1)) samples in $out"
exit $rc
