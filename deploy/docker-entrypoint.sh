#!/bin/sh
# The image's entrypoint: `serve` (the default command) migrates the database first, then runs the
# gateway as PID 1 (uvicorn stops gracefully on SIGTERM: `docker stop`). Any other arguments run
# that boltgate command: `docker run … boltgate:latest merchant create "My Shop"`.
set -eu
if [ "$#" -eq 0 ] || [ "$1" = serve ]; then
  [ "$#" -eq 0 ] || shift
  boltgate migrate
  export BOLTGATE_AUTO_MIGRATE=false  # done just now
  exec boltgate serve "$@"
fi
exec boltgate "$@"
