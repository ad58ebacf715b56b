#!/bin/bash
# Profiler wrapper (madengine packaged tool): bash profile.sh BINARY OUTPUT_DIR [PROFILER ARGS...] MODEL COMMAND...
# Creates OUTPUT_DIR (relative to the model directory) and runs the rest under BINARY; a profiler missing from the
# image is a clear error (exit 127) rather than a silent run without it.
tool="${1:?profiler binary}"; out="${2:?output directory}"; shift 2
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "madengine tool: the '$tool' profiler is not in this image; install it in the image or drop the tool" >&2
  exit 127
fi
mkdir -p "$out"
exec "$tool" "$@"
