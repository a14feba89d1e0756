#!/bin/sh
# Usage: sh bootstrap.sh [COMMAND [ARGS...]]
#
# Makes .venv with snaplab and its test tools (installing Debian's python3-venv first
# when this Python cannot make a venv), then runs COMMAND from it: `snaplab up`,
# `tox`, ... Safe to run again: the install is redone only when pyproject.toml changes.
set -eu
cd "$(dirname "$0")"

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv

stamp=.venv/.snaplab-installed
wanted=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test,dev]'
    echo "$wanted" > "$stamp"
fi

[ $# -gt 0 ] || exit 0
command=$1
shift
exec ".venv/bin/$command" "$@"
