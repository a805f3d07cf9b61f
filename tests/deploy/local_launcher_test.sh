#!/usr/bin/env bash
# The local launcher's (deploy/local/webtier) hardening, run for real:
#  - a remembered settings key that is not a known name is refused, and a key
#    that would run a command (`$(touch FILE)`, `WEBNODE_X[$(touch FILE)]`)
#    runs nothing;
#  - the Redis, replica and Sentinel it starts (its own functions, the script
#    sourced) refuse clients without the password and answer with it;
#  - no password or token is on a command line (ps) or in a log; the run
#    directory is 0700 and the secrets and configs 0600;
#  - the webnodes get the secrets as files: a stand-in webnode records the
#    argv and environment it is started with.
#   local_launcher_test.sh      (ctest deploy.local_secrets)
# Exit 77 (ctest SKIP) without redis-server, redis-sentinel or redis-cli.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAUNCHER=$(cd "$HERE/../../deploy/local" && pwd)/webtier
skip() { echo "SKIP: $*"; exit 77; }
for t in redis-server redis-sentinel redis-cli python3; do command -v "$t" >/dev/null || skip "$t is not installed"; done

WORK=$(mktemp -d /tmp/webtier-launcher.XXXXXX)
RUN_DIR=$WORK/run
# launcher SCRIPT: runs SCRIPT (bash) with the launcher's functions, on this
# test's run dir and stand-in binaries.
launcher() {
  WEBTIER_RUN_DIR=$RUN_DIR WEBTIER_BIN_DIR=$WORK/bin bash -c 'source "$1" && eval "$2"' launcher-test "$LAUNCHER" "$1"
}
cleanup() {
  # Only what this test started: the services in its own run dir.
  [[ -d $RUN_DIR/pids ]] && launcher 'stop_services 5 webnode-1 sentinel-1 redis-replica redis' >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
check() {  # check DESCRIPTION CMD...: runs CMD, reports
  if "${@:2}"; then echo "ok:   $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- settings keys
refused() {  # refused KEY: a settings file with KEY=1 stops the command, runs nothing
  local dir=$WORK/settings-$RANDOM out
  mkdir -p "$dir"
  printf 'WEBTIER_ZK_PATH=/x\n%s=1\n' "$1" >"$dir/settings"
  if out=$(WEBTIER_RUN_DIR=$dir "$LAUNCHER" status 2>&1); then
    echo "  accepted: $out"
    return 1
  fi
  [[ $out == *"unknown setting"* ]] || { echo "  said: $out"; return 1; }
}
check "a key \$(touch FILE) is refused" refused "\$(touch $WORK/pwned-1)"
check "a key WEBNODE_X[\$(touch FILE)] is refused" refused "WEBNODE_X[\$(touch $WORK/pwned-2)]"
check 'a key WEBTIER_NO_SUCH is refused' refused "WEBTIER_NO_SUCH"
check 'no command in a key ran' test ! -e "$WORK/pwned-1" -a ! -e "$WORK/pwned-2"
good_settings() {
  mkdir -p "$WORK/good"
  printf 'WEBTIER_ZK_PATH=/x\nWEBNODE_ORIGIN=http://127.0.0.1:1/%s\n' "\$(touch $WORK/pwned-3)" >"$WORK/good/settings"
  WEBTIER_RUN_DIR=$WORK/good "$LAUNCHER" status >/dev/null && [[ ! -e $WORK/pwned-3 ]]
}
check 'known keys are accepted (their values are data)' good_settings

# ---------------------------------------------------------------- Redis and Sentinel
mkdir -p "$WORK/bin"
# A stand-in webnode: records its argv and environment, then idles.
cat >"$WORK/bin/webnode" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$@" >"$WORK/webnode-argv"
env >"$WORK/webnode-env"
exec sleep 60
EOF
chmod 755 "$WORK/bin/webnode"

REDIS_PORT=$(free_port) REPLICA_PORT=$(free_port) SENTINEL_PORT=$(free_port)
# One Sentinel of the three (enough to check it); the stand-in webnode is
# told the others' and ZooKeeper's ports, and connects to none.
# WEBNODE_REDIS_PASSWORD: a password of the caller's own must not reach the
# nodes (they use the run's).
# shellcheck disable=SC2016 # the script is expanded by the launcher's shell, not this one
WEBTIER_REDIS_PORT=$REDIS_PORT WEBTIER_REDIS_REPLICA_PORT=$REPLICA_PORT WEBTIER_SENTINEL_PORT=$SENTINEL_PORT \
  WEBTIER_REDIS_HA=1 WEBNODE_REDIS_PASSWORD=from-the-environment launcher '
  prepare_run_dir
  start_redis
  start_redis_replica
  start_sentinel 1
  for n in zookeeper sentinel-2 sentinel-3; do echo 1 >"$RUN/ports/$n"; done
  start_webnode 1' >"$WORK/start.log" 2>&1 ||
  { cat "$WORK/start.log"; echo "FAIL: the launcher's functions did not start Redis"; exit 1; }

REDIS_PASSWORD=$(<"$RUN_DIR/secrets/redis-password")
SENTINEL_PASSWORD=$(<"$RUN_DIR/secrets/sentinel-password")
noauth() { [[ $(redis-cli -p "$1" "${@:2}" 2>&1) == *NOAUTH* ]]; }
authed() { [[ $(REDISCLI_AUTH=$2 redis-cli --no-auth-warning -p "$1" "${@:3}" 2>&1) == "$EXPECT" ]]; }
check 'redis refuses an unauthenticated SET' noauth "$REDIS_PORT" SET k v
check 'the replica refuses an unauthenticated GET' noauth "$REPLICA_PORT" GET k
check 'the sentinel refuses an unauthenticated question' noauth "$SENTINEL_PORT" SENTINEL get-master-addr-by-name webtier
EXPECT=OK check 'redis takes a SET with the password' authed "$REDIS_PORT" "$REDIS_PASSWORD" SET k v
EXPECT=yes check 'redis runs in protected mode' \
  bash -c "[[ \$(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -p $REDIS_PORT CONFIG GET protected-mode | tail -n 1) == yes ]]"
linked() { [[ $(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -p "$REPLICA_PORT" INFO replication) == *master_link_status:up* ]]; }
check 'the replica authenticates to its master' linked
sentinel_knows() {
  [[ $(REDISCLI_AUTH=$SENTINEL_PASSWORD redis-cli --no-auth-warning -p "$SENTINEL_PORT" \
    SENTINEL master webtier) == *$'\nflags\nmaster\n'* ]]
}
check 'the sentinel reaches the master with auth-pass' sentinel_knows

# ---------------------------------------------------------------- no secret in sight
secrets=("$REDIS_PASSWORD" "$SENTINEL_PASSWORD" "$(<"$RUN_DIR/admin-token")")
in_no_argv() {
  local s pid start f
  for f in "$RUN_DIR"/pids/*.pid; do
    read -r pid start <"$f"
    for s in "${secrets[@]}"; do
      if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$s"; then echo "  in argv of $pid ($start)"; return 1; fi
    done
  done
}
check 'no secret on a command line' in_no_argv
in_no_log() {
  local s
  for s in "${secrets[@]}"; do
    if grep -rqF -- "$s" "$RUN_DIR/logs" "$WORK/start.log"; then echo "  in a log"; return 1; fi
  done
}
check 'no secret in a log or on the terminal' in_no_log
mode_is() { [[ $(stat -c %a "$2") == "$1" ]] || { echo "  $2 is $(stat -c %a "$2")"; return 1; }; }
check 'run dir 0700' mode_is 700 "$RUN_DIR"
check 'logs 0700' mode_is 700 "$RUN_DIR/logs"
for f in secrets/redis-password secrets/sentinel-password admin-token redis/redis.conf \
  redis-replica/redis.conf sentinel-1/sentinel.conf logs/redis.log; do
  check "$f 0600" mode_is 600 "$RUN_DIR/$f"
done

# ---------------------------------------------------------------- the webnode's flags
has_flag() { grep -qx -- "$1" "$WORK/webnode-argv"; }
check 'the webnode gets --redis-password-file' has_flag --redis-password-file
check 'the webnode gets --redis-sentinel-password-file' has_flag --redis-sentinel-password-file
check 'the webnode gets --admin-token-file' has_flag --admin-token-file
check 'the webnode gets no --admin-token' bash -c "! grep -qx -- --admin-token '$WORK/webnode-argv'"
check 'the environment password is not passed on' bash -c "! grep -q '^WEBNODE_REDIS_PASSWORD=' '$WORK/webnode-env'"

if ((failures)); then
  echo "$failures check(s) failed; launcher output:"
  cat "$WORK/start.log"
  exit 1
fi
echo "all launcher checks passed"
