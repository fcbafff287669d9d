#!/usr/bin/env bash
# Write constraints.txt from a virtual environment's installed packages (the versions the test
# suite just passed with). Usage: tools/write_constraints.sh VENV
set -euo pipefail
venv="${1:?usage: $0 VENV}"
{
  echo "# The exact versions the test suite passed with, every extra included; 'make' installs through"
  echo "# this file (pip install -c constraints.txt). Rewritten by 'make lock' (newest versions, suite"
  echo "# green) on $(date -u +%Y-%m-%d) with Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')."
  # torch's local build tag (+cpu) is left out: the pin then matches the CPU wheel on disk
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -v -i '^textcls' | sed -E 's/^(torch==[0-9.]+)\+[a-z0-9]+$/\1/'
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
