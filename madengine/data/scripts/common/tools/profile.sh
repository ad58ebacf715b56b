#!/bin/bash
# Profiler wrapper (madengine packaged tool): bash profile.sh rocprof|rocprofv3|nsys CMD...
# Creates the tool's output directory and runs CMD under the profiler; a missing profiler is a clear error (127).
tool="${1:?profiler}"; shift
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "madengine tool '$tool': the '$tool' binary is not in this image; install it or drop the tool" >&2
  exit 127
fi
case "$tool" in
  rocprof)   mkdir -p rocprof_output; exec rocprof --stats --timestamp on -o rocprof_output/results.csv "$@" ;;
  rocprofv3) mkdir -p rocprofv3_output; exec rocprofv3 --hip-trace --kernel-trace --output-format csv \
               -d rocprofv3_output -- "$@" ;;
  nsys)      mkdir -p nsys_output; exec nsys profile --force-overwrite true -o nsys_output/report "$@" ;;
  *) echo "profile.sh: unknown profiler $tool" >&2; exit 2 ;;
esac
