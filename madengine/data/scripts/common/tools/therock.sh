#!/bin/bash
# therock_check (madengine packaged tool, a pre-script): report which ROCm the image carries and whether it is a
# TheRock build (ROCm's new build system: a rocm-sdk command or a therock manifest), for the run log.
root="${ROCM_PATH:-/opt/rocm}"
echo "therock_check: ROCm path $root"
if [ -r "$root/.info/version" ]; then echo "therock_check: ROCm version $(cat "$root/.info/version")"; fi
if command -v rocm-sdk >/dev/null 2>&1 || ls "$root"/share/therock* >/dev/null 2>&1; then
  echo "therock_check: TheRock build: yes"
else
  echo "therock_check: TheRock build: no (or ROCm not installed)"
fi
exit 0
