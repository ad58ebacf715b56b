#!/bin/bash
# Example data consumer: the data provider put the data at $MAD_DATAHOME.
echo "MAD_DATAHOME=${MAD_DATAHOME} MAD_DATANAME=${MAD_DATANAME}"
[ -d "${MAD_DATAHOME}" ] || { echo "error: no data at ${MAD_DATAHOME}" >&2; exit 1; }
files=$(find "${MAD_DATAHOME}" -maxdepth 1 -type f | wc -l)
if touch "${MAD_DATAHOME}/.write-test" 2>/dev/null; then rm -f "${MAD_DATAHOME}/.write-test"; echo "data writable: yes"
else echo "data writable: no"; fi
echo "performance: ${files} files"
