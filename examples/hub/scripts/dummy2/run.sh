#!/bin/bash
# A model declared in scripts/dummy2/models.json: its name is dummy2/model2.
echo "args: $*"
echo "performance: $((RANDOM % 100 + 200)) images_per_second"
