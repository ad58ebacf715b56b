#!/bin/bash
# Prints a number AND a Python traceback: madengine must still record FAILURE.
echo "performance: 123 samples_per_second"
echo "Traceback (most recent call last):"
echo '  File "train.py", line 1, in <module>'
echo "RuntimeError: simulated crash after the benchmark printed a number"
