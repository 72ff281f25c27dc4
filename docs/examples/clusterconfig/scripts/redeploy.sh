#!/bin/sh
# instance-redeploy: needs instance-configure's outputs.
set -eu
[ -n "${DEPLOYER_OUT_PORT:-}" ] || { echo "error: no port from instance-configure" >&2; exit 4; }
echo "redeploy $2 on port $DEPLOYER_OUT_PORT"
