#!/bin/bash
echo "loading model ..."
echo "error: simulated failure" >&2
exit 1
