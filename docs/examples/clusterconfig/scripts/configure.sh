#!/bin/sh
# instance-configure: an app without a port gets the default 8080; a port
# that is not a number is refused. Outputs: configured, port.
set -eu
file=$2
echo "configure $DEPLOYER_INSTANCE ($1) at ${DEPLOYER_COMMIT:-?} dry_run=$DEPLOYER_DRY_RUN"
if grep -q 'port="[^"]*[^0-9"][^"]*"' "$file"; then
  echo "error: $DEPLOYER_INSTANCE: the app's port is not a number" >&2
  exit 3
fi
if ! grep -q 'port="' "$file"; then
  edited=$(sed 's|<app \([^>]*\)/>|<app \1 port="8080"/>|' "$file")
  printf '%s\n' "$edited" > "$file"
  echo "$DEPLOYER_INSTANCE: port defaults to 8080"
fi
port=$(sed -n 's/.*port="\([0-9]*\)".*/\1/p' "$file")
echo "configured=$DEPLOYER_INSTANCE" >> "$DEPLOYER_OUTPUT"
echo "port=$port" >> "$DEPLOYER_OUTPUT"
