#!/bin/bash
echo "sleeping ${1:-300} s (longer than the model's timeout)"
sleep "${1:-300}"
echo "performance: 1 samples_per_second"
