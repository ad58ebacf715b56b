#!/bin/bash
# madengine v2's catalogue test helper (tools test_tools_A/B): echo the arguments.
echo "$@"
