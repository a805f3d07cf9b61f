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
#    argv and environment it is started with;
#  - `upgrade balancer` and `restart balancer` hand the listening sockets to a
#    new process with no request refused meanwhile, move the pid files, and
#    leave the old process serving when the new one fails: with a stand-in
#    balancer (Python, the same SCM_RIGHTS handover over the control socket),
#    and with the real one when WEBTIER_TEST_BIN_DIR (default build/bin)
#    holds a balancer whose --help mentions --takeover.
#   local_launcher_test.sh      (ctest deploy.local_secrets)
# Exit 77 (ctest SKIP) without python3. Without redis-server, redis-sentinel
# or redis-cli the Redis part is skipped (exit 77 when every other check
# passed); without curl, the balancer part.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAUNCHER=$REPO/deploy/local/webtier
skip() { echo "SKIP: $*"; exit 77; }
command -v python3 >/dev/null || skip "python3 is not installed"

WORK=$(mktemp -d /tmp/webtier-launcher.XXXXXX)
RUN_DIR=$WORK/run
# launcher SCRIPT: runs SCRIPT (bash) with the launcher's functions, on this
# test's run dir and stand-in binaries.
launcher() {
  WEBTIER_RUN_DIR=$RUN_DIR WEBTIER_BIN_DIR=$WORK/bin bash -c 'source "$1" && eval "$2"' launcher-test "$LAUNCHER" "$1"
}
cleanup() {
  # Only what this test started: the services in its own run dirs.
  [[ -d $RUN_DIR/pids ]] && launcher 'stop_services 5 webnode-1 sentinel-1 redis-replica redis' >/dev/null 2>&1
  local d f pid
  for d in "$WORK"/run-balancer-*; do
    # shellcheck disable=SC2016 # expanded by the launcher's shell
    [[ -d $d/pids ]] || continue
    WEBTIER_RUN_DIR=$d bash -c 'source "$1" && stop_services 5 balancer balancer-next' \
      launcher-test "$LAUNCHER" >/dev/null 2>&1 || true
  done
  # A stand-in balancer that handed over exits by itself; one a failed check
  # left behind goes now (if that pid is still a stand-in of this test).
  for f in "$WORK"/balancer-argv.*; do
    [[ -f $f ]] || continue
    pid=${f##*.}
    if [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *"$WORK/standin-bin/balancer"* ]]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n ${SILENT_ZK:-} ]]; then kill "$SILENT_ZK" 2>/dev/null || true; fi
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

# ---------------------------------------------------------------- balancer handover
# `upgrade balancer` / `restart balancer` run as a user runs them, under load.
# pid_in DIR NAME: the pid in DIR's pid file for NAME (empty when none).
pid_in() { local p=""; [[ -f $1/pids/$2.pid ]] && read -r p _ <"$1/pids/$2.pid"; echo "$p"; }
alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
# webtier_in DIR ARGS...: the launcher on run dir DIR (its settings file says the rest).
stop_balancer_in() {
  # shellcheck disable=SC2016 # expanded by the launcher's shell
  WEBTIER_RUN_DIR=$1 bash -c 'source "$1" && stop_services 10 balancer' launcher-test "$LAUNCHER" >/dev/null
}
webtier_in() { WEBTIER_RUN_DIR=$1 WEBTIER_SKIP_BUILD=1 WEBTIER_SKIP_INSTALL=1 "$LAUNCHER" "${@:2}"; }
# start_balancer_in DIR [ZK_PORT]: as `up` would, minus the rest of the
# tier: a ZooKeeper port is recorded (default: one nobody listens on), then
# start_balancer.
start_balancer_in() {
  # shellcheck disable=SC2016 # expanded by the launcher's shell
  WEBTIER_RUN_DIR=$1 bash -c 'source "$1" && prepare_run_dir && echo "$2" >"$RUN/ports/zookeeper" && start_balancer' \
    launcher-test "$LAUNCHER" "${2:-$(free_port)}"
}
# load URL OUT: one request after another, each on a new connection, until
# $WORK/stop-load exists; a line per request: the HTTP code (000: refused or
# cut) and the X-Pid header (the stand-in's pid).
load() {
  while [[ ! -e $WORK/stop-load ]]; do
    curl -s -o /dev/null -m 5 -w '%{http_code} %header{x-pid}\n' "$1" || true
  done >"$2"
}
# under_load URL OUT CMD...: CMD while load() runs against URL; CMD's output
# in $WORK/cmd.out, its exit code in CMD_RC.
under_load() {
  local url=$1 out=$2 loader; shift 2
  rm -f "$WORK/stop-load"
  load "$url" "$out" &
  loader=$!
  sleep 0.5
  CMD_RC=0
  "$@" >"$WORK/cmd.out" 2>&1 || CMD_RC=$?
  sleep 0.5
  touch "$WORK/stop-load"
  wait "$loader"
}
no_refused() {  # no_refused LOADFILE: requests were made, none refused or cut
  local n bad
  n=$(wc -l <"$1")
  bad=$(grep -c '^000' "$1" || true)
  echo "  $n requests, $bad refused or cut"
  ((n > 0 && bad == 0))
}
show_cmd_out() { echo "  exit code $CMD_RC:"; sed 's/^/  | /' "$WORK/cmd.out"; }
said() { grep -qF -- "$1" "$WORK/cmd.out" || { show_cmd_out; return 1; }; }
said_re() { grep -qE -- "$1" "$WORK/cmd.out" || { show_cmd_out; return 1; }; }
rc_is() { [[ $CMD_RC == "$1" ]] || { show_cmd_out; return 1; }; }
rc_not_0() { [[ $CMD_RC != 0 ]] || { show_cmd_out; return 1; }; }
gone() { ! alive "$1"; }  # (a zombie is gone: nobody may reap it here)
argv_has() { grep -qxF -- "$2" "$WORK/balancer-argv.$1"; }
argv_lacks() { ! argv_has "$@"; }
# the argv of NEW is OLD's plus --takeover
argv_plus_takeover() { argv_has "$2" --takeover && diff <(grep -vxF -- --takeover "$WORK/balancer-argv.$2") "$WORK/balancer-argv.$1"; }
served_by_both() { grep -q " $2\$" "$1" && [[ $(tail -n 1 "$1") == *" $3" ]]; }  # LOADFILE OLD NEW
answers_as() { [[ $(curl -s -D - -o /dev/null -m 5 "$1" | tr -d '\r') == *"X-Pid: $2"* ]]; }
runs_as_balancer() { [[ -n $(pid_in "$1" balancer) ]] && alive "$(pid_in "$1" balancer)"; }
log_has_handover() {  # LOG OLD NEW
  if grep -q "component=handover msg=\"took over\" predecessor=$2" "$1" &&
    grep -q "component=handover msg=\"handed over\" successor=$3" "$1" &&
    grep -q 'component=balancer msg=stopped' "$1"; then
    return 0
  fi
  tail -n 20 "$1" | sed 's/^/  | /'
  return 1
}
health_200() { [[ $(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$1/health") == 200 ]]; }
same_pid_files() {  # same_pid_files DIR PID NAME...: each NAME's pid file holds PID
  local d=$1 p=$2 n; shift 2
  for n in "$@"; do [[ $(pid_in "$d" "$n") == "$p" ]] || { echo "  $n: $(pid_in "$d" "$n"), not $p"; return 1; }; done
}
arg_after() { grep -A1 -xF -- "$2" "$1" | sed -n 2p; }  # arg_after ARGVFILE FLAG

if ! command -v curl >/dev/null; then
  echo "SKIP: curl is not installed (the balancer handover checks)"
else
  # A stand-in balancer: serves plain HTTP ("X-Pid: <its pid>") on --listen,
  # --admin-listen and --tls-listen and hands its listening sockets and the
  # control socket over --control-socket in one SCM_RIGHTS message, as the
  # real one does; with --takeover it takes them from the one listening
  # there (after 0.5 s of "getting ready"), or binds when nobody does.
  # STANDIN_TAKEOVER_FAIL=1: exits 1 instead of taking over. Records its
  # argv in $WORK/balancer-argv.<pid>.
  mkdir -p "$WORK/standin-bin"
  { echo "#!$(python3 -c 'import sys; print(sys.executable)')"; cat; } >"$WORK/standin-bin/balancer" <<'EOF'
import json, os, select, socket, sys, threading, time

argv = sys.argv[1:]
if "--help" in argv:
    print("stand-in balancer\n  --control-socket PATH\n  --takeover\n  --drain-ms N")
    sys.exit(0)
pid = os.getpid()
with open(f"{os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}/balancer-argv.{pid}", "w") as f:
    f.write("\n".join(argv) + "\n")


def opt(name):
    return argv[argv.index(name) + 1] if name in argv else None


def log(level, component, msg, **kv):
    sys.stderr.write(f'ts=- level={level} component={component} msg="{msg}"'
                     + "".join(f" {k}={v}" for k, v in kv.items()) + "\n")
    sys.stderr.flush()


watchdog = threading.Timer(300, lambda: os._exit(3))  # never outlives a broken test
watchdog.daemon = True
watchdog.start()
wanted = {n: opt(f) for n, f in (("listen", "--listen"), ("admin", "--admin-listen"), ("tls", "--tls-listen")) if opt(f)}
listeners, ctl, ctl_path = {}, None, opt("--control-socket")
if "--takeover" in argv and ctl_path:
    time.sleep(0.5)  # "becomes ready" first
    if os.environ.get("STANDIN_TAKEOVER_FAIL"):
        log("error", "handover", "takeover failed; the predecessor keeps serving", err="told-to-fail")
        sys.exit(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(ctl_path)
    except OSError:
        c = None
    if c:
        c.sendall(f"takeover {pid}\n".encode())
        msg, fds, _, _ = socket.recv_fds(c, 4096, 16)
        info = json.loads(msg)
        for name, fd in zip(info["names"], fds):
            s = socket.socket(fileno=fd)
            if name == "control":
                ctl = s
            elif name in wanted and s.getsockname()[1] == int(wanted[name].rsplit(":", 1)[1]):
                listeners[name] = s
            else:
                s.close()
        log("info", "handover", "took over", predecessor=info["pid"], listeners=len(fds))
for name, addr in wanted.items():
    if name not in listeners:
        host, port = addr.rsplit(":", 1)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(128)
        listeners[name] = s
if ctl_path and ctl is None:
    if os.path.exists(ctl_path):
        os.unlink(ctl_path)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(ctl_path)
    os.chmod(ctl_path, 0o600)
    ctl.listen(4)

stop = threading.Event()
busy = [0]
lock = threading.Lock()


def handle(conn):
    try:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        time.sleep(0.02)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pid: %d\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n" % pid)
    finally:
        conn.close()
        with lock:
            busy[0] -= 1


def accept_loop(s):
    s.setblocking(False)
    while not stop.is_set():
        if not select.select([s], [], [], 0.05)[0] or stop.is_set():
            continue
        try:
            conn, _ = s.accept()
        except (BlockingIOError, InterruptedError):
            continue
        conn.setblocking(True)
        with lock:
            busy[0] += 1
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


for s in listeners.values():
    threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
log("info", "balancer", "started")
if ctl is None:
    threading.Event().wait()
while True:
    conn, _ = ctl.accept()
    line = conn.makefile().readline().split()
    if len(line) != 2 or line[0] != "takeover":
        conn.close()
        continue
    names = list(listeners) + ["control"]
    stop.set()  # stops accepting: the successor accepts on the same sockets
    socket.send_fds(conn, [json.dumps({"pid": pid, "names": names}).encode()],
                    [listeners[n].fileno() for n in listeners] + [ctl.fileno()])
    log("info", "handover", "handed over", successor=line[1])
    conn.close()
    break
deadline = time.time() + 10
while busy[0] > 0 and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
log("info", "balancer", "stopped")
os._exit(0)
EOF
  chmod 755 "$WORK/standin-bin/balancer"

  # ---- the stand-in, with HTTPS on: three listeners and the control socket.
  D=$WORK/run-balancer-standin
  P_HTTP=$(free_port) P_ADMIN=$(free_port) P_TLS=$(free_port)
  mkdir -p "$D"
  printf '%s\n' "WEBTIER_BIN_DIR=$WORK/standin-bin" "WEBTIER_BALANCER_PORT=$P_HTTP" "WEBTIER_ADMIN_PORT=$P_ADMIN" \
    WEBTIER_TLS=1 "WEBTIER_TLS_PORT=$P_TLS" "WEBTIER_TLS_CERT=$WORK/cert.pem" "WEBTIER_TLS_KEY=$WORK/key.pem" >"$D/settings"
  start_balancer_in "$D" >"$WORK/standin-start.log" 2>&1 || { cat "$WORK/standin-start.log"; echo "FAIL: start_balancer"; exit 1; }
  OLD=$(pid_in "$D" balancer)
  check 'start_balancer passes --control-socket <run dir>/balancer/control.sock' \
    test "$(arg_after "$WORK/balancer-argv.$OLD" --control-socket)" == "$D/balancer/control.sock"
  check 'no --takeover at the first start' argv_lacks "$OLD" --takeover

  under_load "http://127.0.0.1:$P_HTTP/" "$WORK/load-standin" webtier_in "$D" upgrade balancer
  NEW=$(pid_in "$D" balancer)
  check 'upgrade balancer succeeds' rc_is 0
  check 'it reports the handover of the 4 sockets' said "pid $NEW took over 4 listening socket(s) of pid $OLD"
  check 'and how long it took' said_re "upgraded: pid $OLD -> $NEW in [0-9]+\.[0-9]{3} s"
  check 'the new process is another one' test -n "$NEW" -a "$NEW" != "$OLD"
  check 'balancer, balancer-admin and balancer-tls pid files follow it' \
    same_pid_files "$D" "$NEW" balancer balancer-admin balancer-tls
  check 'no balancer-next is left' test ! -e "$D/pids/balancer-next.pid"
  check 'the old process is gone when the command returns' gone "$OLD"
  check 'the new one got the same flags (ports, control socket) plus --takeover' argv_plus_takeover "$OLD" "$NEW"
  check 'no request was refused or cut during the upgrade' no_refused "$WORK/load-standin"
  check 'both processes served during it, the new one last' served_by_both "$WORK/load-standin" "$OLD" "$NEW"

  # ---- a successor that fails: the old one keeps serving, nothing moves.
  CUR=$NEW
  STANDIN_TAKEOVER_FAIL=1 under_load "http://127.0.0.1:$P_HTTP/" "$WORK/load-fail" webtier_in "$D" restart balancer
  check 'a restart whose new process fails exits non-zero' rc_not_0
  check 'and says the old one keeps serving' said "the old one (pid $CUR) keeps serving"
  check 'the pid files still name the old one' same_pid_files "$D" "$CUR" balancer balancer-admin balancer-tls
  check 'no balancer-next is left after the failure' test ! -e "$D/pids/balancer-next.pid"
  check 'no request was refused meanwhile' no_refused "$WORK/load-fail"
  check 'the old one still serves' answers_as "http://127.0.0.1:$P_HTTP/" "$CUR"

  # ---- restart with the balancer stopped: it is started.
  stop_balancer_in "$D"
  webtier_in "$D" restart balancer >"$WORK/cmd.out" 2>&1 && CMD_RC=0 || CMD_RC=$?
  check 'restart balancer starts a stopped balancer' rc_is 0
  check 'which then runs' runs_as_balancer "$D"
  check 'and says so' said "the balancer is not running; starting it"

  # ---- a balancer started without a control socket (an older launcher): refused, left alone.
  stop_balancer_in "$D"
  # shellcheck disable=SC2016 # expanded by the launcher's shell
  WEBTIER_RUN_DIR=$D bash -c 'source "$1" && prepare_run_dir &&
    spawn balancer "$BIN_DIR/balancer" --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" &&
    cp "$(pid_file balancer)" "$(pid_file balancer-admin)"' launcher-test "$LAUNCHER" "$P_HTTP" "$P_ADMIN" >/dev/null
  LONE=$(pid_in "$D" balancer)
  webtier_in "$D" restart balancer >"$WORK/cmd.out" 2>&1 && CMD_RC=0 || CMD_RC=$?
  check 'a balancer without a control socket is not replaced' rc_not_0
  check 'it keeps running as the balancer' same_pid_files "$D" "$LONE" balancer balancer-admin
  check 'untouched' alive "$LONE"
  check 'and the command says what to do' said "has no control socket"
  stop_balancer_in "$D"

  # ---- the real balancer, when the build has the handover.
  REAL_BIN=${WEBTIER_TEST_BIN_DIR:-$REPO/build/bin}
  if [[ -x $REAL_BIN/balancer && $("$REAL_BIN/balancer" --help 2>&1 || true) == *--takeover* ]]; then
    D=$WORK/run-balancer-real
    P_HTTP=$(free_port) P_ADMIN=$(free_port) P_TLS=$(free_port)
    mkdir -p "$D"
    printf '%s\n' "WEBTIER_BIN_DIR=$REAL_BIN" "WEBTIER_BALANCER_PORT=$P_HTTP" "WEBTIER_ADMIN_PORT=$P_ADMIN" >"$D/settings"
    # HTTPS too when openssl can make the launcher its certificate.
    if command -v openssl >/dev/null; then printf '%s\n' WEBTIER_TLS=1 "WEBTIER_TLS_PORT=$P_TLS" >>"$D/settings"; fi
    # No ZooKeeper: a port that accepts connections and never answers (a
    # refused connection can fail the ZooKeeper client's start). The balancer
    # waits 2 s for it, then serves an empty pool (503s): enough for a handover.
    python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16); print(s.getsockname()[1], flush=True)
held = []
while True: held.append(s.accept()[0])' >"$WORK/zk-port" &
    SILENT_ZK=$!
    wait_for_file() { for _ in $(seq 50); do [[ -s $1 ]] && return 0; sleep 0.1; done; return 1; }
    wait_for_file "$WORK/zk-port" || { echo "FAIL: no stand-in ZooKeeper port"; exit 1; }
    start_balancer_in "$D" "$(<"$WORK/zk-port")" >"$WORK/real-start.log" 2>&1 ||
      { cat "$WORK/real-start.log"; echo "FAIL: start_balancer (real)"; exit 1; }
    check 'real balancer: start_balancer starts it' runs_as_balancer "$D"
    OLD=$(pid_in "$D" balancer)
    under_load "http://127.0.0.1:$P_HTTP/" "$WORK/load-real" webtier_in "$D" upgrade balancer
    NEW=$(pid_in "$D" balancer)
    check 'real balancer: upgrade balancer succeeds' rc_is 0
    check 'real balancer: the new process took the sockets over' said_re "pid $NEW took over [0-9]+ listening socket\(s\) of pid $OLD"
    check 'real balancer: the pid files follow it' same_pid_files "$D" "$NEW" balancer balancer-admin
    check 'real balancer: the old process is gone' gone "$OLD"
    check 'real balancer: its log has took over, handed over, stopped' log_has_handover "$D/logs/balancer.log" "$OLD" "$NEW"
    check 'real balancer: no request was refused or cut' no_refused "$WORK/load-real"
    check 'real balancer: the new one answers /health' health_200 "$P_ADMIN"
    webtier_in "$D" down >/dev/null 2>&1 || true
    kill "$SILENT_ZK" 2>/dev/null || true
  else
    echo "SKIP: the real balancer's handover ($REAL_BIN/balancer is missing or has no --takeover; WEBTIER_TEST_BIN_DIR names another)"
  fi
fi

# ---------------------------------------------------------------- Redis and Sentinel
redis_missing=""
for t in redis-server redis-sentinel redis-cli; do command -v "$t" >/dev/null || redis_missing+=" $t"; done
if [[ -n $redis_missing ]]; then
  ((failures == 0)) || { echo "$failures check(s) failed"; exit 1; }
  skip "not installed:$redis_missing (the Redis part is skipped; every other check passed)"
fi
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
# The balancer's user: the invalidation channel and nothing else, on both servers.
EDGE_PASSWORD=$(<"$RUN_DIR/secrets/edge-redis-password")
as_edge() { redis-cli --no-auth-warning --user webtier-edge --pass "$EDGE_PASSWORD" -p "$1" "${@:2}" 2>&1; }
edge_may() { [[ $(as_edge "$@") != *NOPERM* && $(as_edge "$@") != *WRONGPASS* ]]; }
edge_may_not() { [[ $(as_edge "$@") == *NOPERM* ]]; }
check 'the edge user may PING' edge_may "$REDIS_PORT" PING
check 'the edge user may subscribe to webtier:purge' \
  bash -c "[[ \$(timeout 1 redis-cli --no-auth-warning --user webtier-edge --pass '$EDGE_PASSWORD' -p $REPLICA_PORT SUBSCRIBE webtier:purge 2>&1) == *subscribe*webtier:purge* ]]"
check 'the edge user may not read a key' edge_may_not "$REDIS_PORT" GET k
check 'the edge user may not write a key' edge_may_not "$REPLICA_PORT" SET k v
check 'the edge user may not publish' edge_may_not "$REDIS_PORT" PUBLISH webtier:purge x
check 'the edge user may not subscribe elsewhere' edge_may_not "$REDIS_PORT" SUBSCRIBE other

# ---------------------------------------------------------------- no secret in sight
secrets=("$REDIS_PASSWORD" "$SENTINEL_PASSWORD" "$EDGE_PASSWORD" "$(<"$RUN_DIR/admin-token")")
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
for f in secrets/redis-password secrets/sentinel-password secrets/edge-redis-password admin-token redis/redis.conf \
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

# ---------------------------------------------------------------- the balancer's flags
# shellcheck disable=SC2016 # expanded by the launcher's shell
WEBTIER_REDIS_HA=1 launcher 'balancer_command; printf "%s\n" "${BALANCER_CMD[@]}"' >"$WORK/balancer-argv" 2>&1
follows() { grep -qxF -- "$1" "$WORK/balancer-argv" || { cat "$WORK/balancer-argv"; return 1; }; }
check 'the balancer follows the channel on both servers' follows "127.0.0.1:$REDIS_PORT,127.0.0.1:$REPLICA_PORT"
check 'the balancer authenticates as webtier-edge' follows webtier-edge
check 'the balancer reads its password from a file' follows "$RUN_DIR/secrets/edge-redis-password"
check 'no edge password on its command line' bash -c "! grep -qF -- '$EDGE_PASSWORD' '$WORK/balancer-argv'"

if ((failures)); then
  echo "$failures check(s) failed; launcher output:"
  cat "$WORK/start.log"
  exit 1
fi
echo "all launcher checks passed"
