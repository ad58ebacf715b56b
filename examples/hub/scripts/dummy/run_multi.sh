#!/bin/bash
# Example with several results: writes the CSV named by models.json "multiple_results" (also in $MAD_OUTPUT_CSV).
set -e
out="${MAD_OUTPUT_CSV:-perf_dummy_multi.csv}"
{
  echo "model,temperature,performance,metric"
  for i in 1 2 3; do echo "${i},$((40 + i)),$((RANDOM % 100 + 100 * i)).0,tokens_per_second"; done
} > "${out}"
cat "${out}"
