#!/bin/bash
# The image's ENV ctxtest tells which Dockerfile the context selected.
echo "performance: ${ctxtest:-0} ctx_value"
