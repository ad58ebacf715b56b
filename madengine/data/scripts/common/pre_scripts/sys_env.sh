#!/bin/bash
# System environment capture (madengine packaged pre-script): writes "<name>.csv" with rows "key,value" for the
# OS, kernel, CPU, memory, GPUs/driver/ROCm/CUDA versions (when present) and Python and key library versions.
# Usage: bash sys_env.sh OUTPUT.csv     (never fails the run: missing tools are recorded as "not available")
out="${1:-sys_env.csv}"
csv() {  # csv KEY VALUE -> one quoted CSV row
  local v="${2//\"/\"\"}"
  v="${v//$'\n'/; }"
  printf '"%s","%s"\n' "$1" "$v" >> "$out"
}
na="not available"
: > "$out"
echo '"key","value"' >> "$out"
csv os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}" || echo unknown)"
csv kernel "$(uname -r 2>/dev/null || echo unknown)"
csv machine "$(uname -m 2>/dev/null || echo unknown)"
csv cpu_model "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
csv cpu_count "$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
csv memory_total_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo 2>/dev/null)"
if command -v amd-smi >/dev/null 2>&1; then
  csv gpu_tool amd-smi
  csv amd_smi_version "$(amd-smi version 2>&1 | head -3)"
  csv gpus "$(amd-smi static --asic 2>/dev/null | grep -m8 MARKET_NAME | sed 's/.*: //' | sort | uniq -c | sed 's/^ *//')"
elif command -v rocm-smi >/dev/null 2>&1; then
  csv gpu_tool rocm-smi
  csv gpus "$(rocm-smi --showproductname 2>/dev/null | grep -i 'card series' | sed 's/.*: //' | sort | uniq -c | sed 's/^ *//')"
  csv gpu_driver "$(rocm-smi --showdriverversion 2>/dev/null | grep -i version | sed 's/.*: //' | head -1)"
elif command -v nvidia-smi >/dev/null 2>&1; then
  csv gpu_tool nvidia-smi
  csv gpus "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | sed 's/^ *//')"
  csv gpu_driver "$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
else
  csv gpu_tool "$na"
  csv gpus "$na"
fi
csv rocm_version "$(cat /opt/rocm/.info/version 2>/dev/null || echo "$na")"
csv cuda_version "$( (nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2) || true)"
csv hip_version "$( (hipconfig --version 2>/dev/null) || echo "$na")"
if command -v python3 >/dev/null 2>&1; then
  csv python "$(python3 --version 2>&1)"
  python3 - >> "$out" 2>/dev/null <<'PY'
import csv, sys
from importlib import metadata
w = csv.writer(sys.stdout, quoting=csv.QUOTE_ALL, lineterminator="\n")
for name in ("torch", "torchvision", "jax", "jaxlib", "tensorflow", "transformers", "vllm", "sglang", "deepspeed",
             "triton", "numpy", "flash_attn", "megatron-core"):
    try:
        w.writerow([f"pkg_{name}", metadata.version(name)])
    except metadata.PackageNotFoundError:
        pass
PY
else
  csv python "$na"
fi
echo "system environment written to $out ($(($(wc -l < "$out") - 1)) entries)"
