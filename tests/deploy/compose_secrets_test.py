#!/usr/bin/env python3
"""The compose files' Redis, replica and Sentinel as they would start, run for
real on loopback, with the secrets deploy/compose-secrets.sh makes:

  - compose-secrets.sh makes every file the compose files mount (dir 0700);
  - Redis started with docker-compose.yml's own command refuses a client
    without the password (NOAUTH) and takes a write with it, protected mode
    on, and no password on its command line;
  - the replica (docker-compose.redis-ha.yml) authenticates to it;
  - the balancer's Redis user (its BALANCER_EDGE_REDIS_USER, with the file
    its BALANCER_EDGE_REDIS_PASSWORD_FILE names) may subscribe to the
    invalidation channel on both servers its BALANCER_EDGE_REDIS lists, and
    may do nothing else (no key, no PUBLISH, no other channel);
  - a Sentinel whose config is written by the HA file's own script refuses
    clients without its password and reaches Redis with auth-pass;
  - the exporter's password file is keyed by its REDIS_ADDR; Grafana has
    no anonymous access and no admin password in the file;
  - and the Kubernetes dev overlay's Redis: its rendered command, with the
    Secret's files and Kubernetes' "$$" -> "$", refuses clients without the
    password too, and has the balancers' user (the password file the
    rendered balancer names) for the invalidation channel only (skipped
    without kubectl).

Container paths (/etc/webtier/secrets, /data) and service names are mapped
to a temp dir and 127.0.0.1; ports are free ones.

    compose_secrets_test.py      (ctest deploy.compose_secrets; exit 77 = SKIP without Redis)
"""
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, "deploy")
SECRETS_IN_CONTAINER = "/etc/webtier/secrets"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path):
    with open(path) as f:
        return f.read()


def load(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return yaml.safe_load(f)


def cli(port, *args, password=None):
    env = dict(os.environ)
    env.pop("REDISCLI_AUTH", None)
    if password:
        env["REDISCLI_AUTH"] = password
    out = subprocess.run(["redis-cli", "--no-auth-warning", "-p", str(port), *args],
                         capture_output=True, text=True, env=env, timeout=10)
    return (out.stdout + out.stderr).strip()


def wait_for(check, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


class ComposeSecrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="webtier-compose-")
        cls.secrets = os.path.join(cls.work, "secrets")
        subprocess.run([os.path.join(DEPLOY, "compose-secrets.sh"), cls.secrets], check=True,
                       capture_output=True)
        cls.redis_password = read(os.path.join(cls.secrets, "redis-password"))
        cls.sentinel_password = read(os.path.join(cls.secrets, "sentinel-password"))
        cls.procs = []
        cls.main = load("docker-compose.yml")
        cls.ha = load("docker-compose.redis-ha.yml")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.kill()
            p.wait()
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def start(cls, argv, name):
        with open(os.path.join(cls.work, name + ".log"), "w") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cls.work)
        cls.procs.append(p)
        return p

    @classmethod
    def redis_argv(cls, command, port, name):
        """A compose redis-server command on loopback: secrets and service names mapped."""
        argv = [a.replace(SECRETS_IN_CONTAINER, cls.secrets) for a in command]
        if "--replicaof" in argv:
            i = argv.index("--replicaof")
            argv[i + 1:i + 3] = ["127.0.0.1", str(cls.redis_port)]
        data = os.path.join(cls.work, name)
        os.makedirs(data, exist_ok=True)
        return argv + ["--port", str(port), "--bind", "127.0.0.1", "--dir", data]

    def test_1_secrets_script_makes_every_mounted_file(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.secrets).st_mode), 0o700)
        for pw in (self.redis_password, self.sentinel_password):
            self.assertRegex(pw, r"^[0-9a-f]{48}$")
        mounted = set()
        for doc in (self.main, self.ha):
            for svc in doc["services"].values():
                for v in (svc or {}).get("volumes", []):
                    m = re.match(r"\$\{WEBTIER_SECRETS_DIR:-\./secrets\}/([^:]+):", v)
                    if m:
                        mounted.add(m.group(1))
        self.assertTrue({"redis-auth.conf", "redis-password", "sentinel-password", "sentinel-auth.conf",
                         "grafana-admin-password", "redis-exporter.json", "edge-redis-password"} <= mounted, mounted)
        for f in mounted:
            self.assertTrue(os.path.isfile(os.path.join(self.secrets, f)), f)
        again = subprocess.run([os.path.join(DEPLOY, "compose-secrets.sh"), self.secrets], check=True,
                               capture_output=True, text=True)
        self.assertEqual(read(os.path.join(self.secrets, "redis-password")), self.redis_password,
                         "a second run keeps the passwords")
        self.assertNotIn(self.redis_password, again.stdout + again.stderr)

    def test_2_redis_refuses_clients_without_the_password(self):
        cls = type(self)
        cls.redis_port = free_port()
        p = cls.start(cls.redis_argv(self.main["services"]["redis"]["command"], cls.redis_port, "redis"), "redis")
        self.assertTrue(wait_for(lambda: cli(cls.redis_port, "PING", password=self.redis_password) == "PONG"),
                        read(os.path.join(cls.work, "redis.log")))
        self.assertIn("NOAUTH", cli(cls.redis_port, "SET", "k", "v"))
        self.assertEqual(cli(cls.redis_port, "SET", "k", "v", password=self.redis_password), "OK")
        self.assertEqual(cli(cls.redis_port, "CONFIG", "GET", "protected-mode", password=self.redis_password)
                         .splitlines()[-1], "yes")
        cmdline = read(f"/proc/{p.pid}/cmdline")
        self.assertNotIn(self.redis_password, cmdline)

    def test_3_replica_authenticates_to_its_master(self):
        cls = type(self)
        cls.replica_port = free_port()
        p = cls.start(cls.redis_argv(self.ha["services"]["redis-replica"]["command"], cls.replica_port,
                                     "replica"), "replica")
        self.assertTrue(wait_for(lambda: "master_link_status:up" in cli(
            cls.replica_port, "INFO", "replication", password=self.redis_password)),
            read(os.path.join(cls.work, "replica.log")))
        self.assertIn("NOAUTH", cli(cls.replica_port, "GET", "k"))
        self.assertNotIn(self.redis_password, read(f"/proc/{p.pid}/cmdline"))

    def test_3b_balancer_user_may_only_follow_the_invalidation_channel(self):
        cls = type(self)
        env = self.main["services"]["balancer"]["environment"]
        ha_env = self.ha["services"]["balancer"]["environment"]
        user = env["BALANCER_EDGE_REDIS_USER"]
        inside = env["BALANCER_EDGE_REDIS_PASSWORD_FILE"]
        self.assertTrue(inside.startswith(SECRETS_IN_CONTAINER + "/"), inside)
        self.assertTrue(any(v.endswith(":" + inside + ":ro") for v in self.main["services"]["balancer"]["volumes"]),
                        "the password file is mounted into the balancer")
        password = read(inside.replace(SECRETS_IN_CONTAINER, cls.secrets))
        self.assertRegex(password, r"^[0-9a-f]{48}$")
        self.assertEqual(env["BALANCER_EDGE_REDIS"], "redis:6379")
        self.assertEqual(ha_env["BALANCER_EDGE_REDIS"], "redis:6379,redis-replica:6379")
        ports = {"redis": cls.redis_port, "redis-replica": cls.replica_port}

        def as_user(port, *args, timeout=10):
            out = subprocess.run(["redis-cli", "--no-auth-warning", "--user", user, "--pass", password,
                                  "-p", str(port), *args], capture_output=True, text=True, timeout=timeout)
            return (out.stdout + out.stderr).strip()

        for server in ha_env["BALANCER_EDGE_REDIS"].split(","):
            port = ports[server.split(":")[0]]
            self.assertEqual(as_user(port, "PING"), "PONG")
            try:
                subprocess.run(["redis-cli", "--no-auth-warning", "--user", user, "--pass", password, "-p",
                                str(port), "SUBSCRIBE", "webtier:purge"], capture_output=True, text=True, timeout=1)
                self.fail("SUBSCRIBE returned: it was refused")
            except subprocess.TimeoutExpired as e:
                self.assertIn("webtier:purge", (e.stdout or b"").decode() if isinstance(e.stdout, bytes)
                              else (e.stdout or ""))
            for refused in (("GET", "k"), ("SET", "k", "v"), ("PUBLISH", "webtier:purge", "x"),
                            ("SUBSCRIBE", "other"), ("KEYS", "*"), ("CONFIG", "GET", "requirepass")):
                self.assertIn("NOPERM", as_user(port, *refused), (server, refused))
        self.assertNotIn(password, read(os.path.join(cls.secrets, "redis-password")))

    def test_4_sentinel_asks_for_its_password_and_uses_auth_pass(self):
        cls = type(self)
        port = free_port()
        data = os.path.join(cls.work, "sentinel-data")
        os.makedirs(data)
        sentinel = self.ha["x-sentinel"]
        self.assertEqual(sentinel["entrypoint"], ["sh", "-c"])
        script = sentinel["command"][0].replace(SECRETS_IN_CONTAINER, cls.secrets).replace("/data", data)
        script = script.replace("port 26379", f"port {port}\nbind 127.0.0.1")
        script = script.replace("monitor webtier redis 6379 2", f"monitor webtier 127.0.0.1 {cls.redis_port} 1")
        p = cls.start(["sh", "-c", script], "sentinel")
        self.assertTrue(wait_for(lambda: "PONG" in cli(port, "PING", password=self.sentinel_password)),
                        read(os.path.join(cls.work, "sentinel.log")))
        self.assertIn("NOAUTH", cli(port, "SENTINEL", "get-master-addr-by-name", "webtier"))
        # num-slaves comes from the master's INFO, which needs auth-pass.
        self.assertTrue(wait_for(lambda: "num-slaves\n1\n" in cli(
            port, "SENTINEL", "master", "webtier", password=self.sentinel_password) + "\n"),
            cli(port, "SENTINEL", "master", "webtier", password=self.sentinel_password))
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data, "sentinel.conf")).st_mode), 0o600)
        self.assertNotIn(self.sentinel_password, read(f"/proc/{p.pid}/cmdline"))

    def test_5_exporter_and_grafana(self):
        exporter = self.main["services"]["redis-exporter"]["environment"]
        self.assertEqual(exporter["REDIS_PASSWORD_FILE"], SECRETS_IN_CONTAINER + "/redis-exporter.json")
        keys = json.loads(read(os.path.join(self.secrets, "redis-exporter.json")))
        self.assertEqual(list(keys), [exporter["REDIS_ADDR"]])
        grafana = self.main["services"]["grafana"]["environment"]
        self.assertEqual(grafana.get("GF_AUTH_ANONYMOUS_ENABLED"), "false")
        self.assertNotIn("GF_SECURITY_ADMIN_PASSWORD", grafana)
        self.assertTrue(grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith(SECRETS_IN_CONTAINER))
        ini = read(os.path.join(REPO, "monitoring/grafana/grafana.ini"))
        section = re.search(r"\[auth\.anonymous\]([^\[]*)", ini).group(1)
        self.assertRegex(section, r"(?m)^enabled\s*=\s*false")
        for doc in (self.main, self.ha):
            for name, svc in doc["services"].items():
                cmd = (svc or {}).get("command") or []
                self.assertNotIn("no", [a for i, a in enumerate(cmd) if i and cmd[i - 1] == "--protected-mode"], name)


class KubernetesRedis(unittest.TestCase):
    def test_dev_overlay_redis_refuses_clients_without_the_password(self):
        if not shutil.which("kubectl"):
            self.skipTest("kubectl is not installed")
        out = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, "kubernetes/overlays/dev")],
                             check=True, capture_output=True, text=True).stdout
        objects = [o for o in yaml.safe_load_all(out) if o]
        redis = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "redis")
        balancer = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "balancer")
        c = redis["spec"]["template"]["spec"]["containers"][0]
        benv = {e["name"]: e.get("value") for e in balancer["spec"]["template"]["spec"]["containers"][0]["env"]}
        edge_file = benv["BALANCER_EDGE_REDIS_PASSWORD_FILE"]
        edge_dir = os.path.dirname(edge_file)
        work = tempfile.mkdtemp(prefix="webtier-k8s-redis-")
        try:
            secrets, data = os.path.join(work, "secrets"), os.path.join(work, "data")
            edge = os.path.join(work, "edge")
            os.makedirs(secrets)
            os.makedirs(data)
            os.makedirs(edge)
            password = "k8s-" + os.urandom(12).hex()
            with open(os.path.join(secrets, "redis-password"), "w") as f:
                f.write(password)  # a Secret's file: no trailing newline
            edge_password = "edge-" + os.urandom(12).hex()
            with open(os.path.join(edge, os.path.basename(edge_file)), "w") as f:
                f.write(edge_password)
            port = free_port()
            # What the kubelet runs: "$$" is Kubernetes' escape for "$".
            argv = [a.replace("$$", "$").replace(SECRETS_IN_CONTAINER, secrets).replace(edge_dir, edge)
                    .replace("/data", data) for a in c["command"] + c.get("args", [])]
            argv[-1] += f" --port {port} --bind 127.0.0.1 --dir {data}"
            with open(os.path.join(work, "redis.log"), "w") as log:
                p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            try:
                self.assertTrue(wait_for(lambda: cli(port, "PING", password=password) == "PONG"),
                                read(os.path.join(work, "redis.log")))
                self.assertIn("NOAUTH", cli(port, "SET", "k", "v"))
                self.assertEqual(cli(port, "SET", "k", "v", password=password), "OK")
                self.assertNotIn(password, read(f"/proc/{p.pid}/cmdline"))
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data, "auth.conf")).st_mode), 0o600)
                user = benv["BALANCER_EDGE_REDIS_USER"]
                self.assertEqual(benv["BALANCER_EDGE_REDIS"], "redis:6379")

                def as_user(*args):
                    out = subprocess.run(["redis-cli", "--no-auth-warning", "--user", user, "--pass", edge_password,
                                          "-p", str(port), *args], capture_output=True, text=True, timeout=10)
                    return (out.stdout + out.stderr).strip()

                self.assertEqual(as_user("PING"), "PONG")
                for refused in (("GET", "k"), ("PUBLISH", "webtier:purge", "x"), ("SUBSCRIBE", "other")):
                    self.assertIn("NOPERM", as_user(*refused), refused)
                self.assertNotIn(edge_password, read(f"/proc/{p.pid}/cmdline"))
            finally:
                p.kill()
                p.wait()
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for tool in ("redis-server", "redis-cli", "sh"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed (scripts/install-deps.sh)")
            sys.exit(77)
    unittest.main(verbosity=2)
