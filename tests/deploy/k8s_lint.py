#!/usr/bin/env python3
"""Project lint of rendered Kubernetes manifests: what API schemas cannot see.

    k8s_lint.py [--repo DIR] RENDER.yaml...    (a `kubectl kustomize` output)

Prints one line per finding ("ERROR Kind/name: ...") and exits 1 on any. The
checks (docs/kubernetes.md "Offline validation"):
  - selectors match pod labels: workloads, Services, PodDisruptionBudgets,
    pod (anti-)affinity and topology spread; HPA targets exist;
  - probes point at ports the container declares and, for webnode and
    balancer, at the paths and ports those programs serve;
  - grace period longer than preStop plus the webnode's or the balancer's
    --drain-ms, and both have a preStop;
  - ZooKeeper, Sentinel and Redis addresses name Services or StatefulSet pods
    that exist and listen there; an ensemble's ZOO_SERVERS agree with its
    StatefulSet and headless Service; Prometheus' targets exist;
  - every ConfigMap and Secret referenced exists (unless optional), with the
    keys used; monitoring/ files all reach the generated ConfigMaps;
  - the ZooKeeper four-letter-word whitelist covers the probe commands, and
    its admin server is off or on a port of its own;
  - requests and limits, non-root, tagged images, $(VAR) order;
  - hardening: a default-deny ingress NetworkPolicy, every pod behind a Service
    admitted by a policy, only the balancer open to every client; no pod
    mounts a service-account token unless its account is bound to a role, and
    then only into init containers; Grafana's admin password from a required
    Secret (no admin/admin fallback) and no anonymous access; every Redis and
    Sentinel started with requirepass, never --protected-mode no.
Secrets the operator creates (OPERATOR_SECRETS) are not in a render: they are
checked for the keys used instead.
Used by tests/deploy/k8s_lint_test.py; lint() is the entry for tests.
"""
import argparse
import os
import re
import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
FOUR_LETTER_WORDS = {"conf", "cons", "crst", "dump", "envi", "ruok", "srst", "srvr", "stat", "wchs",
                     "wchc", "wchp", "mntr", "isro", "hash", "gtmk", "dirs"}
# What the webnode's admin listener serves (its probes go there; the public
# port has only "/" and a bare "/health").
WEBNODE_ADMIN_PATHS = {"/health", "/ready", "/metrics"}
# The ConfigMaps monitoring/kustomization.yaml generates, and their folder.
MONITORING_CONFIG_MAPS = {
    "prometheus-config": "prometheus", "prometheus-rules": "prometheus/rules", "grafana-config": "grafana",
    "grafana-datasources": "grafana/provisioning/datasources",
    "grafana-dashboard-providers": "grafana/provisioning/dashboards", "grafana-dashboards": "grafana/dashboards",
}
BALANCER_ADMIN_PATHS = {"/health", "/healthz", "/status", "/metrics"}
# Secrets the operator creates before `kubectl apply` (docs/kubernetes.md
# "Secrets"), with the keys they hold.
OPERATOR_SECRETS = {
    "webtier-redis": {"redis-password", "sentinel-password", "edge-redis-password"},
    "grafana-admin": {"password"},
    "webnode-admin": {"token"},
}


def name_of(o):
    return f"{o['kind']}/{o['metadata']['name']}"


def base_name(o):
    """A generated ConfigMap's name without kustomize's hash suffix."""
    n = o["metadata"]["name"]
    return re.sub(r"-[a-z0-9]{10}$", "", n) if o["kind"] in ("ConfigMap", "Secret") else n


def selector_matches(sel, labels):
    """A Service selector (plain map) or a LabelSelector against pod labels."""
    if not sel:
        return False
    if "matchLabels" not in sel and "matchExpressions" not in sel:
        sel = {"matchLabels": sel}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e["operator"], e["key"], e.get("values", [])
        if op == "In" and labels.get(key) not in vals: return False
        if op == "NotIn" and labels.get(key) in vals: return False
        if op == "Exists" and key not in labels: return False
        if op == "DoesNotExist" and key in labels: return False
    return True


def env_map(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def port_number(c, port):
    """A probe/Service target port (number or name) in container c, or None."""
    for p in c.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    return None


def listen_port(value, default):
    return int(value.rsplit(":", 1)[1]) if value and ":" in value else default


def sleep_seconds(handler):
    """Seconds a preStop handler waits: exec `sleep N` (also in sh -c) or sleep."""
    if not handler:
        return 0
    if "sleep" in handler:
        return int(handler["sleep"]["seconds"])
    cmd = " ".join(handler.get("exec", {}).get("command", []))
    m = re.search(r"\bsleep\s+(\d+)", cmd)
    return int(m.group(1)) if m else 0


class Lint:
    def __init__(self, objects, repo=None):
        self.objects = [o for o in objects if o]
        self.repo = repo
        self.errors = []
        self.by_kind = {}
        for o in self.objects:
            self.by_kind.setdefault(o["kind"], []).append(o)

    def err(self, o, msg):
        self.errors.append(f"{name_of(o)}: {msg}")

    def kind(self, k):
        return self.by_kind.get(k, [])

    def workloads(self):
        return [o for k in WORKLOADS for o in self.kind(k)]

    @staticmethod
    def pod(o):
        return o["spec"]["template"]

    def containers(self, o, init=True):
        spec = self.pod(o)["spec"]
        return spec.get("containers", []) + (spec.get("initContainers", []) if init else [])

    def matching(self, sel):
        return [w for w in self.workloads() if selector_matches(sel, self.pod(w)["metadata"].get("labels", {}))]

    def find(self, kind, name):
        return next((o for o in self.kind(kind) if base_name(o) == name), None)

    # -- selectors ---------------------------------------------------------
    def check_selectors(self):
        for w in self.workloads():
            labels = self.pod(w)["metadata"].get("labels", {})
            if not selector_matches(w["spec"].get("selector"), labels):
                self.err(w, "spec.selector does not match the pod template's labels")
            spec = self.pod(w)["spec"]
            aff = spec.get("affinity", {})
            for kind in ("podAntiAffinity", "podAffinity"):
                a = aff.get(kind, {})
                terms = a.get("requiredDuringSchedulingIgnoredDuringExecution", []) + \
                    [t["podAffinityTerm"] for t in a.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
                for t in terms:
                    if kind == "podAntiAffinity" and not selector_matches(t.get("labelSelector"), labels):
                        self.err(w, f"{kind} labelSelector {t.get('labelSelector')} does not match its own pods")
                    elif kind == "podAffinity" and not self.matching(t.get("labelSelector")):
                        self.err(w, f"{kind} labelSelector matches no pods")
            for t in spec.get("topologySpreadConstraints", []):
                if not selector_matches(t.get("labelSelector"), labels):
                    self.err(w, f"topologySpreadConstraints labelSelector {t.get('labelSelector')} "
                                "does not match its own pods")
        for s in self.kind("Service"):
            sel = s["spec"].get("selector")
            targets = self.matching(sel)
            if not targets:
                self.err(s, f"selector {sel} matches no pods")
            for w in targets:
                for p in s["spec"].get("ports", []):
                    tp = p.get("targetPort", p["port"])
                    if not any(port_number(c, tp) for c in self.containers(w, init=False)):
                        self.err(s, f"targetPort {tp} is not a port of {name_of(w)}")
        for p in self.kind("PodDisruptionBudget"):
            if not self.matching(p["spec"].get("selector")):
                self.err(p, f"selector {p['spec'].get('selector')} matches no pods")
        for h in self.kind("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            target = self.find(ref["kind"], ref["name"])
            if not target:
                self.err(h, f"scaleTargetRef {ref['kind']}/{ref['name']} does not exist")
                continue
            if "replicas" in target["spec"]:
                self.err(target, "sets spec.replicas although a HorizontalPodAutoscaler owns it")
            if "scaleDown" not in h["spec"].get("behavior", {}):
                self.err(h, "no explicit behavior.scaleDown")
            for c in self.containers(target, init=False):
                if not c.get("resources", {}).get("requests", {}).get("cpu"):
                    self.err(h, f"scales on CPU but {name_of(target)} container {c['name']} requests none")

    # -- probes and termination ----------------------------------------------
    def check_probes(self):
        for w in self.workloads():
            spec = self.pod(w)["spec"]
            grace = spec.get("terminationGracePeriodSeconds", 30)
            for c in self.containers(w, init=False):
                env = env_map(c)
                for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                    probe = c.get(kind)
                    if not probe:
                        continue
                    action = probe.get("httpGet") or probe.get("tcpSocket")
                    if action and port_number(c, action["port"]) is None:
                        self.err(w, f"{c['name']} {kind} port {action['port']} is not a container port")
                if c.get("image", "").startswith("webtier/webnode"):
                    self.check_webnode(w, c, env, grace)
                elif c.get("image", "").startswith("webtier/balancer"):
                    self.check_balancer(w, c, env, grace)
                pre = sleep_seconds(c.get("lifecycle", {}).get("preStop"))
                if pre >= grace:
                    self.err(w, f"{c['name']} preStop sleeps {pre} s, not less than the grace period {grace} s")

    def check_http_probe(self, w, c, kind, want_path, port, served):
        probe = c.get(kind, {}).get("httpGet")
        if not probe:
            self.err(w, f"{c['name']} has no HTTP {kind}")
            return
        if probe["path"] not in served or (want_path and probe["path"] != want_path):
            self.err(w, f"{c['name']} {kind} path {probe['path']} (want {want_path or sorted(served)})")
        if port_number(c, probe["port"]) != port:
            self.err(w, f"{c['name']} {kind} port {probe['port']} is not the port it serves on ({port})")

    def check_webnode(self, w, c, env, grace):
        port = listen_port(env.get("WEBNODE_ADMIN_LISTEN"), 8081)
        self.check_http_probe(w, c, "readinessProbe", "/ready", port, WEBNODE_ADMIN_PATHS)
        self.check_http_probe(w, c, "livenessProbe", "/health", port, WEBNODE_ADMIN_PATHS)
        self.check_drain(w, c, grace, int(env.get("WEBNODE_DRAIN_MS") or 2000),
                         "the balancers must see the deregistration")

    def check_drain(self, w, c, grace, drain_ms, why_pre_stop):
        """A preStop, and a grace period longer than it plus the drain."""
        pre_stop = c.get("lifecycle", {}).get("preStop")
        if not pre_stop:
            self.err(w, f"{c['name']} has no preStop ({why_pre_stop})")
        need = sleep_seconds(pre_stop) + drain_ms / 1000
        if grace <= need:
            self.err(w, f"terminationGracePeriodSeconds {grace} is not longer than preStop + drain ({need:g} s)")

    def check_balancer(self, w, c, env, grace):
        admin = listen_port(env.get("BALANCER_ADMIN_LISTEN"), 9000)
        for kind in ("readinessProbe", "livenessProbe"):
            self.check_http_probe(w, c, kind, None, admin, BALANCER_ADMIN_PATHS)
        if port_number(c, listen_port(env.get("BALANCER_LISTEN"), 8000)) is None:
            self.err(w, f"{c['name']} does not declare its proxy port")
        # A rolling update replaces balancers one by one: the old pod must
        # leave the Service's endpoints (preStop) and then drain (SIGTERM,
        # at most --drain-ms) before the kubelet's SIGKILL.
        self.check_drain(w, c, grace, int(env.get("BALANCER_DRAIN_MS") or 30000),
                         "clients must stop being sent to it before it drains")

    # -- addresses -----------------------------------------------------------
    def resolve(self, o, host, port, what):
        """The workload behind host:port (a Service or a StatefulSet pod), or None."""
        short = host.split(".")
        svc = self.find("Service", short[0])
        if svc:
            if not any(p["port"] == port for p in svc["spec"].get("ports", [])):
                self.err(o, f"{what}: Service {short[0]} has no port {port}")
                return None
            ws = self.matching(svc["spec"].get("selector"))
            return ws[0] if ws else None
        m = re.fullmatch(r"(.+)-(\d+)", short[0])
        sts = self.find("StatefulSet", m.group(1)) if m else None
        if not sts or len(short) < 2:
            self.err(o, f"{what}: {host} is neither a Service nor a StatefulSet pod")
            return None
        if sts["spec"].get("serviceName") != short[1]:
            self.err(o, f"{what}: {host}: {short[1]} is not the headless Service of {name_of(sts)} "
                        f"({sts['spec'].get('serviceName')})")
        svc = self.find("Service", short[1])
        if not svc or svc["spec"].get("clusterIP") != "None":
            self.err(o, f"{what}: {host}: no headless Service {short[1]}")
        if int(m.group(2)) >= sts["spec"].get("replicas", 1):
            self.err(o, f"{what}: {host}: {name_of(sts)} has {sts['spec'].get('replicas', 1)} replicas")
        if not any(port_number(c, port) for c in self.containers(sts, init=False)):
            self.err(o, f"{what}: {name_of(sts)} does not listen on {port}")
        return sts

    def addresses(self, o, value, default_port, what, image):
        """Checks a comma list of host[:port]; returns the workloads named."""
        found = []
        for hp in filter(None, (value or "").split(",")):
            host, _, port = hp.strip().partition(":")
            w = self.resolve(o, host, int(port or default_port), what)
            if w and not any(c.get("image", "").startswith(image) for c in self.containers(w)):
                self.err(o, f"{what}: {hp} is {name_of(w)}, not {image}")
            found.append((hp, w))
        return found

    def check_connect_strings(self):
        for w in self.workloads():
            for c in self.containers(w, init=False):
                env = env_map(c)
                for var in ("WEBNODE_ZK", "BALANCER_ZK"):
                    if var in env:
                        self.check_zk_list(w, env[var], var)
                if "WEBNODE_REDIS_SENTINEL" in env:
                    found = self.addresses(w, env["WEBNODE_REDIS_SENTINEL"], 26379, "WEBNODE_REDIS_SENTINEL", "redis")
                    master = env.get("WEBNODE_REDIS_MASTER_NAME") or "webtier"
                    for _, s in found:
                        names = {env_map(sc).get("MASTER_NAME") for sc in self.containers(s)} if s else set()
                        if s and master not in names:
                            self.err(w, f"master name {master} is not the one {name_of(s)} monitors {names}")
                if env.get("WEBNODE_REDIS"):
                    self.addresses(w, env["WEBNODE_REDIS"], 6379, "WEBNODE_REDIS", "redis")
                if env.get("REDIS_ADDR"):
                    self.addresses(w, env["REDIS_ADDR"].split("://")[-1], 6379, "REDIS_ADDR", "redis")
        for z in self.kind("StatefulSet"):
            for c in self.containers(z, init=False):
                if c.get("image", "").startswith("zookeeper"):
                    self.check_ensemble(z, c)

    def check_zk_list(self, o, value, what):
        found = self.addresses(o, value, 2181, what, "zookeeper")
        stses = {name_of(w): w for _, w in found if w and w["kind"] == "StatefulSet"}
        pods = [hp for hp, w in found if w and w["kind"] == "StatefulSet" and "." in hp]
        for sts in stses.values():
            if pods and len(pods) != sts["spec"].get("replicas", 1):
                self.err(o, f"{what} lists {len(pods)} of the {sts['spec'].get('replicas', 1)} servers of {name_of(sts)}")

    def check_ensemble(self, z, c):
        env = env_map(c)
        replicas = z["spec"].get("replicas", 1)
        servers = re.findall(r"server\.(\d+)=([^:\s]+)", env.get("ZOO_SERVERS") or "")
        if replicas > 1 and len(servers) != replicas:
            self.err(z, f"{replicas} replicas but ZOO_SERVERS lists {len(servers)} servers")
        for sid, host in servers:
            want = f"{z['metadata']['name']}-{int(sid) - 1}.{z['spec'].get('serviceName')}"
            if host.split(".svc")[0].rsplit(".", 1)[0] != want and host != want:
                self.err(z, f"ZOO_SERVERS server.{sid}={host}, expected {want}")
        # Four-letter words: ZooKeeper 3.5+ allows only srvr unless whitelisted.
        allowed = set((env.get("ZOO_4LW_COMMANDS_WHITELIST") or "srvr").replace(" ", "").split(","))
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            cmd = " ".join(c.get(kind, {}).get("exec", {}).get("command", []))
            for word in set(re.findall(r"\b([a-z]{4})\b", cmd)) & FOUR_LETTER_WORDS:
                if word not in allowed and "*" not in allowed:
                    self.err(z, f"{kind} sends '{word}' but ZOO_4LW_COMMANDS_WHITELIST allows {sorted(allowed)}")
        if (env.get("ZOO_ADMINSERVER_ENABLED") or "true") != "false":
            m = re.search(r"admin\.serverPort=(\d+)", env.get("ZOO_CFG_EXTRA") or "")
            port = int(m.group(1)) if m else 8080
            ports = [p["containerPort"] for x in self.containers(z) for p in x.get("ports", [])]
            if not m or port in ports:
                self.err(z, f"ZooKeeper admin server enabled on {port}: disable it or give it a port of its own")

    # -- references, resources, security, images -------------------------------
    def check_references(self):
        for w in self.workloads():
            spec = self.pod(w)["spec"]
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            for v in vols.values():
                for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                    ref = v.get(key)
                    if not ref:
                        continue
                    name = ref.get("name") or ref.get("secretName")
                    obj = self.find(kind, name) or next((o for o in self.kind(kind) if o["metadata"]["name"] == name), None)
                    if kind == "Secret" and not obj and name in OPERATOR_SECRETS:
                        for item in ref.get("items", []):
                            if item["key"] not in OPERATOR_SECRETS[name]:
                                self.err(w, f"volume {v['name']}: Secret {name} has no key {item['key']} "
                                            f"(it holds {sorted(OPERATOR_SECRETS[name])})")
                        continue
                    if not obj and not ref.get("optional"):
                        self.err(w, f"volume {v['name']}: {kind} {name} does not exist")
                    for item in ref.get("items", []) if obj else []:
                        if item["key"] not in obj.get("data", {}):
                            self.err(w, f"volume {v['name']}: {kind} {name} has no key {item['key']}")
            for c in self.containers(w):
                for m in c.get("volumeMounts", []):
                    v = vols.get(m["name"])
                    claims = [t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])]
                    if not v and m["name"] not in claims:
                        self.err(w, f"{c['name']} mounts {m['name']}, which is no volume")
                    elif v and v.get("configMap") and m.get("subPath"):
                        cm = self.find_any("ConfigMap", v["configMap"]["name"])
                        if cm and m["subPath"] not in cm.get("data", {}):
                            self.err(w, f"{c['name']} mounts key {m['subPath']}, not in {name_of(cm)}")
                for e in c.get("env", []):
                    for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                        ref = e.get("valueFrom", {}).get(key)
                        if ref and kind == "Secret" and ref["name"] in OPERATOR_SECRETS and \
                                not self.find_any(kind, ref["name"]):
                            if ref["key"] not in OPERATOR_SECRETS[ref["name"]]:
                                self.err(w, f"{c['name']} env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
                            continue
                        if ref and not ref.get("optional") and not self.find_any(kind, ref["name"]):
                            self.err(w, f"{c['name']} env {e['name']}: {kind} {ref['name']} does not exist")
                defined = set()
                for e in c.get("env", []):
                    for ref in re.findall(r"\$\((\w+)\)", e.get("value") or ""):
                        if ref not in defined:
                            self.err(w, f"{c['name']} env {e['name']} uses $({ref}) before it is defined")
                    defined.add(e["name"])

    def find_any(self, kind, name):
        return self.find(kind, name) or next((o for o in self.kind(kind) if o["metadata"]["name"] == name), None)

    def check_containers(self):
        tags = {}
        for w in self.workloads():
            spec = self.pod(w)["spec"]
            pod_sc = spec.get("securityContext", {})
            for c in self.containers(w):
                res = c.get("resources", {})
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        if r not in res.get(part, {}):
                            self.err(w, f"{c['name']} has no {part}.{r}")
                sc = c.get("securityContext", {})
                if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                    self.err(w, f"{c['name']} may run as root (runAsNonRoot)")
                if sc.get("allowPrivilegeEscalation") is not False:
                    self.err(w, f"{c['name']} allows privilege escalation")
                image = c.get("image", "")
                repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
                if not tag or tag == "latest":
                    self.err(w, f"{c['name']} image {image} has no fixed tag")
                if repo.startswith("webtier/"):
                    tags.setdefault(tag, set()).add(repo)
        if len(tags) > 1:
            self.errors.append(f"webtier images carry different tags: {tags}")

    def check_monitoring(self):
        """Prometheus targets exist; every monitoring/ file is in a ConfigMap."""
        cm = self.find("ConfigMap", "prometheus-config")
        if not cm:
            self.errors.append("no prometheus-config ConfigMap")
            return
        prom = yaml.safe_load(cm["data"]["prometheus.yml"])
        for job in prom.get("scrape_configs", []):
            for sd in job.get("serverset_sd_configs", []):
                self.check_zk_list(cm, ",".join(sd["servers"]), f"job {job['job_name']} servers")
            for sc in job.get("static_configs", []):
                for t in sc["targets"]:
                    host, _, port = t.partition(":")
                    if host != "localhost":
                        self.resolve(cm, host, int(port), f"job {job['job_name']}")
            for sd in job.get("dns_sd_configs", []):
                for n in sd["names"]:
                    svc = self.find("Service", n)
                    if not svc or svc["spec"].get("clusterIP") != "None":
                        self.err(cm, f"job {job['job_name']}: {n} must be a headless Service (one A record per pod)")
                    else:
                        self.resolve(cm, n, sd["port"], f"job {job['job_name']}")
        if not self.repo:
            return
        mon = os.path.join(self.repo, "monitoring")
        for cm_name, folder in (("prometheus-rules", "prometheus/rules"), ("grafana-dashboards", "grafana/dashboards")):
            obj = self.find("ConfigMap", cm_name)
            on_disk = set(os.listdir(os.path.join(mon, folder)))
            have = set((obj or {}).get("data", {}))
            if on_disk - have:
                self.errors.append(f"ConfigMap {cm_name} lacks {sorted(on_disk - have)} "
                                   "(list them in monitoring/kustomization.yaml)")
        # One source of truth: the generated ConfigMaps hold the files as they are.
        for cm_name, folder in MONITORING_CONFIG_MAPS.items():
            obj = self.find("ConfigMap", cm_name)
            for key, text in (obj or {}).get("data", {}).items():
                path = os.path.join(mon, folder, key)
                if not os.path.exists(path) or open(path).read() != text:
                    self.errors.append(f"ConfigMap {cm_name} key {key} differs from monitoring/{folder}/{key}")

    # -- hardening -----------------------------------------------------------------
    def policy_selects(self, policy, labels):
        sel = policy["spec"].get("podSelector") or {}
        return sel == {} or selector_matches(sel, labels)

    def check_network_policies(self):
        policies = self.kind("NetworkPolicy")
        if not any(p["spec"].get("podSelector") in ({}, None) and "Ingress" in p["spec"].get("policyTypes", [])
                   and not p["spec"].get("ingress") for p in policies):
            self.errors.append("no default-deny ingress NetworkPolicy (podSelector {}, policyTypes [Ingress], no rules)")
        for w in self.workloads():
            labels = self.pod(w)["metadata"].get("labels", {})
            admitting = [p for p in policies if p["spec"].get("ingress") and self.policy_selects(p, labels)]
            services = [name_of(s) for s in self.kind("Service") if selector_matches(s["spec"].get("selector"), labels)]
            if services and not admitting:
                self.err(w, f"no NetworkPolicy admits anything to its pods, which {', '.join(services)} selects")
        for p in policies:
            for rule in p["spec"].get("ingress") or []:
                peers = rule.get("from")
                open_rule = not peers or any(peer.get("podSelector") == {} and "namespaceSelector" in peer
                                             or peer.get("namespaceSelector") == {} or "ipBlock" in peer
                                             for peer in peers)
                if not open_rule:
                    continue
                for w in self.workloads():
                    if self.policy_selects(p, self.pod(w)["metadata"].get("labels", {})) and not any(
                            c.get("image", "").startswith("webtier/balancer") for c in self.containers(w, init=False)):
                        self.err(p, f"opens {name_of(w)} to every client (only the balancer's public port may be)")

    def check_service_account_tokens(self):
        bound = set()
        for b in self.kind("RoleBinding") + self.kind("ClusterRoleBinding"):
            for sub in b.get("subjects", []):
                if sub.get("kind") == "ServiceAccount":
                    bound.add(sub["name"])
        for w in self.workloads():
            spec = self.pod(w)["spec"]
            account = spec.get("serviceAccountName") or "default"
            sa = self.find("ServiceAccount", account)
            automount = spec.get("automountServiceAccountToken")
            if automount is None and sa is not None:
                automount = sa.get("automountServiceAccountToken")
            if automount is not False:
                self.err(w, "mounts a service-account token in every container "
                            "(set automountServiceAccountToken: false)")
            token_volumes = {v["name"] for v in spec.get("volumes", [])
                             if any("serviceAccountToken" in src for src in v.get("projected", {}).get("sources", []))}
            if token_volumes and account not in bound:
                self.err(w, f"projects a token for service account {account}, which no role binding names")
            for c in self.containers(w, init=False):
                for m in c.get("volumeMounts", []):
                    if m["name"] in token_volumes:
                        self.err(w, f"{c['name']} mounts the API token {m['name']}: only an init container that "
                                    "asks the API server may")

    def check_grafana(self):
        ini = (self.find_any("ConfigMap", "grafana-config") or {}).get("data", {}).get("grafana.ini", "")
        m = re.search(r"(?ms)^\[auth\.anonymous\](.*?)(?=^\[|\Z)", ini)
        ini_anonymous = bool(m and re.search(r"(?m)^\s*enabled\s*=\s*true", m.group(1)))
        for w in self.workloads():
            for c in self.containers(w, init=False):
                if not c.get("image", "").startswith("grafana/"):
                    continue
                env = {e["name"]: e for e in c.get("env", [])}
                password = env.get("GF_SECURITY_ADMIN_PASSWORD") or env.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
                ref = (password or {}).get("valueFrom", {}).get("secretKeyRef")
                if not password:
                    self.err(w, f"{c['name']}: no admin password: Grafana falls back to admin/admin")
                elif "GF_SECURITY_ADMIN_PASSWORD" in env and not ref:
                    self.err(w, f"{c['name']}: the admin password is not from a Secret")
                elif ref and ref.get("optional"):
                    self.err(w, f"{c['name']}: the admin password's Secret is optional: without it Grafana "
                                "falls back to admin/admin")
                anonymous = (env.get("GF_AUTH_ANONYMOUS_ENABLED") or {}).get("value")
                if (anonymous or "").lower() == "true" or (anonymous is None and ini_anonymous):
                    self.err(w, f"{c['name']}: anonymous access is enabled")

    def scripts_of(self, w, c):
        """The text a container runs: its command and args, and the ConfigMap scripts they name."""
        text = " ".join(c.get("command", []) + c.get("args", []))
        spec = self.pod(w)["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            cm = vols.get(m["name"], {}).get("configMap")
            obj = self.find_any("ConfigMap", cm["name"]) if cm else None
            for key, body in (obj or {}).get("data", {}).items():
                if f"{m['mountPath']}/{key}" in text:
                    text += "\n" + body
        return text

    def check_redis_auth(self):
        for w in self.workloads():
            for c in self.containers(w, init=False):
                if not c.get("image", "").startswith("redis"):
                    continue
                text = self.scripts_of(w, c)
                if re.search(r"protected-mode[\"' ]+no\b", text):
                    self.err(w, f"{c['name']} runs with --protected-mode no")
                if "requirepass" not in text:
                    self.err(w, f"{c['name']} starts without requirepass: anyone who reaches it can write")

    def run(self):
        self.check_selectors()
        self.check_probes()
        self.check_connect_strings()
        self.check_references()
        self.check_containers()
        self.check_monitoring()
        self.check_network_policies()
        self.check_service_account_tokens()
        self.check_grafana()
        self.check_redis_auth()
        return self.errors


def lint(objects, repo=None):
    return Lint(objects, repo).run()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", help="repository root, to check monitoring/ against the ConfigMaps")
    ap.add_argument("renders", nargs="+")
    args = ap.parse_args()
    failed = False
    for path in args.renders:
        with open(path) as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        errors = lint(objects, args.repo)
        for e in errors:
            print(f"ERROR {os.path.basename(path)}: {e}")
        print(f"{path}: {len(objects)} objects, {len(errors)} findings")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
