#!/bin/bash
# Example custom data provider: runs in the container in $MAD_DATAHOME and "downloads" N files.
n="${1:-3}"
for i in $(seq 1 "$n"); do echo "sample $i" > "sample_$i.txt"; done
echo "custom data: wrote $n files to $(pwd)"
