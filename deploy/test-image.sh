#!/usr/bin/env bash
# Build deploy/Dockerfile and check the image end to end (by hand, not by the test suite: minutes):
#
#   sudo bash deploy/test-image.sh            # BASE=python:3.11-slim-bookworm if it can be pulled
#   sudo BASE=boltgate-base:bookworm bash deploy/test-image.sh
#
# 1. a Docker engine: the running one, or dockerd started here (and stopped at the end);
# 2. the base image: $BASE, else python:3.11-slim-bookworm if it can be pulled, else one made here
#    with debootstrap from the Debian mirror apt uses (tagged boltgate-base:bookworm, kept; it
#    trusts the CAs in /usr/local/share/ca-certificates too, for pip behind a TLS-intercepting proxy);
# 3. the build (timed), the image size;
# 4. the production default refuses to start without settings;
# 5. a container in dev mode on 127.0.0.1 only, read-only root, no capabilities: time until it
#    answers and until Docker calls it healthy; a merchant from `docker exec … boltgate merchant
#    create`, a payment through the API paid on the dev node; `boltgate backup` inside it; a
#    restart keeps the data (volume); `docker stop` ends it cleanly.
# Prints one summary line per step; bench/RESULTS.md ("Deployment") has a run's output.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-boltgate:test}
PORT=${PORT:-18402}
NAME=boltgate-image-test
VOLUME=boltgate-image-test-data
LOCAL_BASE=boltgate-base:bookworm
started_dockerd=""

now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }
say() { echo "== $*"; }
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm "$VOLUME" >/dev/null 2>&1 || true
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# 1. engine
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "no Docker engine (apt-get install docker.io)" >&2; exit 1; }
  say "starting dockerd (log: /tmp/boltgate-dockerd.log)"
  dockerd >/tmp/boltgate-dockerd.log 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 /tmp/boltgate-dockerd.log >&2; exit 1; }
fi
say "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"

# 2. base image
build_args=()
if [ -z "${BASE:-}" ]; then
  if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
     || timeout 120 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
    BASE=python:3.11-slim-bookworm
  else
    BASE=$LOCAL_BASE
  fi
fi
if [ "$BASE" = "$LOCAL_BASE" ] && ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "no debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  mirror=$( { grep -rhoE '^(deb|URIs:) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } \
           | head -n 1 | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d)
  t=$(now)
  say "building $LOCAL_BASE with debootstrap from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/boltgate-debootstrap.log 2>&1
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian*}/debian-security bookworm-security main
EOF
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends python3 python3-venv ca-certificates >/dev/null && update-ca-certificates >/dev/null \
      && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb'
  : >"$rootfs/etc/resolv.conf"
  tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
  say "base $LOCAL_BASE built in $(since "$t") s"
fi
if [ "$BASE" = "$LOCAL_BASE" ]; then
  # Debian 12's Python is 3.11.2: redis needs async-timeout before 3.11.3, and requirements.lock
  # (made on a later 3.11) does not pin it
  build_args+=(--build-arg ALLOW_UNPINNED=async-timeout)
fi
for var in PIP_INDEX_URL PIP_CERT; do
  [ -z "${!var:-}" ] || build_args+=(--build-arg "$var=${!var}")
done
say "base: $BASE ($(docker run --rm "$BASE" python3 --version))"

# 3. build
t=$(now)
docker build -q -f deploy/Dockerfile --build-arg "BASE=$BASE" "${build_args[@]}" -t "$IMAGE" . >/dev/null
build_s=$(since "$t")
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "built $IMAGE in $build_s s: $((size / 1000000)) MB ($(docker image inspect -f '{{.Config.User}}' "$IMAGE") user)"

# 4. production mode is the default and refuses to start unconfigured
refusal=$(docker run --rm "$IMAGE" 2>&1 || true)
grep -q "refuses to start in production mode" <<<"$refusal" || { echo "$refusal" >&2; exit 1; }
say "unconfigured (production) start refused: ${refusal:0:100}…"

# 5. run it
run_opts=(--name "$NAME" -d --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges
          -v "$VOLUME:/var/lib/boltgate" -e BOLTGATE_MODE=dev -e "BOLTGATE_PUBLIC_URL=http://127.0.0.1:$PORT")
t=$(now)
if ! docker run "${run_opts[@]}" -p "127.0.0.1:$PORT:8402" "$IMAGE" >/dev/null 2>/tmp/boltgate-run.err; then
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  say "publishing a port failed ($(head -c 200 /tmp/boltgate-run.err)); host network, 127.0.0.1 only"
  t=$(now)
  docker run "${run_opts[@]}" --network host -e BOLTGATE_HOST=127.0.0.1 -e "BOLTGATE_PORT=$PORT" "$IMAGE" >/dev/null
fi
url="http://127.0.0.1:$PORT"
until curl -sf "$url/healthz" >/dev/null; do
  [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || { docker logs "$NAME" >&2; exit 1; }
  sleep 0.1
done
answered_s=$(since "$t")
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ]; do sleep 0.2; done
say "answering after $answered_s s, healthy after $(since "$t") s (HEALTHCHECK every 10 s)"

key=$(docker exec "$NAME" boltgate merchant create "Image Shop" | tail -n 1)
payment=$(curl -sf -X POST "$url/api/payments" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
          -d '{"orderId": "image-1", "amount": "5.00", "currency": "USD"}')
read -r invoice hash < <(python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["invoiceId"], p["paymentHash"])' <<<"$payment")
docker exec "$NAME" boltgate dev pay "$hash" >/dev/null
status=""
for _ in $(seq 1 50); do
  status=$(curl -sf "$url/api/payments/$invoice" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = paid ] && break
  sleep 0.1
done
[ "$status" = paid ] || { echo "payment $invoice is $status" >&2; exit 1; }
say "merchant made with docker exec; payment $invoice paid on the dev node: $status"

docker exec "$NAME" boltgate backup /var/lib/boltgate/backup-test.db | head -n 1 | sed 's/^/== /'
docker exec "$NAME" sh -c 'ls -ln /var/lib/boltgate' | sed 's/^/   /'

t=$(now)
docker restart "$NAME" >/dev/null
until curl -sf "$url/healthz" >/dev/null; do sleep 0.1; done
status=$(curl -sf "$url/api/payments/$invoice" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
[ "$status" = paid ] || { echo "after a restart, payment $invoice is $status" >&2; exit 1; }
say "restarted in $(since "$t") s; the payment is still $status (volume)"

t=$(now)
docker stop "$NAME" >/dev/null
say "stopped in $(since "$t") s, exit code $(docker inspect -f '{{.State.ExitCode}}' "$NAME")"
say "ok"
