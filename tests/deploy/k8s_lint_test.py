#!/usr/bin/env python3
"""The Kubernetes lint (k8s_lint.py) on both rendered overlays, then on
mutated renders: each mutation is a real mistake the lint must name.

    k8s_lint_test.py        (ctest deploy.k8s_lint; exit 77 = SKIP without kubectl)
"""
import copy
import os
import shutil
import subprocess
import sys
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import k8s_lint  # noqa: E402

RENDERS = {}


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(REPO, "deploy/kubernetes/overlays", overlay)],
                         check=True, capture_output=True, text=True).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def get(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and k8s_lint.base_name(o) == name)


def container(objects, kind, name):
    return get(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


def env(c, var, value):
    for e in c["env"]:
        if e["name"] == var:
            e["value"] = value
            return
    c["env"].append({"name": var, "value": value})


class Overlays(unittest.TestCase):
    def test_both_overlays_are_clean(self):
        for name, objects in RENDERS.items():
            with self.subTest(overlay=name):
                self.assertGreater(len(objects), 20)
                self.assertEqual(k8s_lint.lint(objects, REPO), [])


class Mutations(unittest.TestCase):
    """Each test breaks one thing in the ha render and expects the finding."""

    def setUp(self):
        self.o = copy.deepcopy(RENDERS["ha"])

    def assertFinds(self, *parts):
        errors = k8s_lint.lint(self.o, REPO)
        hits = [e for e in errors if all(p in e for p in parts)]
        self.assertTrue(hits, f"no finding with {parts} in {errors}")

    def test_service_selector_typo(self):
        get(self.o, "Service", "webtier")["spec"]["selector"] = {"app.kubernetes.io/name": "balancers"}
        self.assertFinds("Service/webtier", "matches no pods")

    def test_pdb_selector_typo(self):
        get(self.o, "PodDisruptionBudget", "zookeeper")["spec"]["selector"]["matchLabels"] = {"app": "zookeeper"}
        self.assertFinds("PodDisruptionBudget/zookeeper", "matches no pods")

    def test_anti_affinity_selects_other_pods(self):
        aff = get(self.o, "StatefulSet", "zookeeper")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        aff["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]["matchLabels"] = {"app": "zk"}
        self.assertFinds("StatefulSet/zookeeper", "podAntiAffinity", "does not match its own pods")

    def test_topology_spread_selects_other_pods(self):
        spread = get(self.o, "Deployment", "webnode")["spec"]["template"]["spec"]["topologySpreadConstraints"]
        spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] = "web-node"
        self.assertFinds("Deployment/webnode", "topologySpreadConstraints")

    def test_hpa_target_missing(self):
        get(self.o, "HorizontalPodAutoscaler", "webnode")["spec"]["scaleTargetRef"]["name"] = "webnodes"
        self.assertFinds("HorizontalPodAutoscaler/webnode", "does not exist")

    def test_short_grace_period(self):
        # preStop 3 s + drain 5 s: 8 s is not enough.
        get(self.o, "Deployment", "webnode")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 8
        self.assertFinds("Deployment/webnode", "terminationGracePeriodSeconds 8", "preStop + drain (8 s)")

    def test_longer_drain_than_grace(self):
        env(container(self.o, "Deployment", "webnode"), "WEBNODE_DRAIN_MS", "40000")
        self.assertFinds("Deployment/webnode", "preStop + drain (43 s)")

    def test_balancer_drain_longer_than_grace(self):
        # preStop 5 s + drain 25 s: 30 s leaves the drain no room.
        get(self.o, "Deployment", "balancer")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
        self.assertFinds("Deployment/balancer", "terminationGracePeriodSeconds 30", "preStop + drain (30 s)")
        env(container(self.o, "Deployment", "balancer"), "BALANCER_DRAIN_MS", "60000")
        self.assertFinds("Deployment/balancer", "preStop + drain (65 s)")

    def test_balancer_without_pre_stop(self):
        del container(self.o, "Deployment", "balancer")["lifecycle"]
        self.assertFinds("Deployment/balancer", "no preStop")

    def test_no_pre_stop(self):
        del container(self.o, "Deployment", "webnode")["lifecycle"]
        self.assertFinds("Deployment/webnode", "no preStop")

    def test_readiness_on_health(self):
        container(self.o, "Deployment", "webnode")["readinessProbe"]["httpGet"]["path"] = "/health"
        self.assertFinds("Deployment/webnode", "readinessProbe path /health")

    def test_probe_on_other_port(self):
        c = container(self.o, "Deployment", "webnode")
        env(c, "WEBNODE_ADMIN_LISTEN", "0.0.0.0:8080")
        self.assertFinds("Deployment/webnode", "livenessProbe port admin is not the port it serves on (8080)")

    def test_probe_on_public_port(self):
        container(self.o, "Deployment", "webnode")["readinessProbe"]["httpGet"]["port"] = "http"
        self.assertFinds("Deployment/webnode", "readinessProbe port http is not the port it serves on (8081)")

    def test_balancer_probe_on_proxy_port(self):
        container(self.o, "Deployment", "balancer")["livenessProbe"]["httpGet"]["port"] = "http"
        self.assertFinds("Deployment/balancer", "livenessProbe port http")

    def test_zk_connect_string_names_no_service(self):
        env(container(self.o, "Deployment", "balancer"), "BALANCER_ZK", "zk:2181")
        self.assertFinds("Deployment/balancer", "BALANCER_ZK", "zk is neither")

    def test_zk_connect_string_misses_a_server(self):
        env(container(self.o, "Deployment", "webnode"), "WEBNODE_ZK",
            "zookeeper-0.zookeeper-headless:2181,zookeeper-1.zookeeper-headless:2181")
        self.assertFinds("Deployment/webnode", "lists 2 of the 3 servers")

    def test_zk_pod_beyond_replicas(self):
        get(self.o, "StatefulSet", "zookeeper")["spec"]["replicas"] = 2
        self.assertFinds("zookeeper-2.zookeeper-headless", "has 2 replicas")

    def test_zk_headless_service_renamed(self):
        get(self.o, "StatefulSet", "zookeeper")["spec"]["serviceName"] = "zk-peers"
        self.assertFinds("is not the headless Service of StatefulSet/zookeeper")

    def test_whitelist_lacks_probe_word(self):
        env(container(self.o, "StatefulSet", "zookeeper"), "ZOO_4LW_COMMANDS_WHITELIST", "srvr,mntr")
        self.assertFinds("StatefulSet/zookeeper", "livenessProbe sends 'ruok'")

    def test_admin_server_on_default_port(self):
        env(container(self.o, "StatefulSet", "zookeeper"), "ZOO_ADMINSERVER_ENABLED", "true")
        self.assertFinds("StatefulSet/zookeeper", "admin server enabled on 8080")

    def test_missing_config_map(self):
        self.o = [o for o in self.o if not (o["kind"] == "ConfigMap" and k8s_lint.base_name(o) == "redis-scripts")]
        self.assertFinds("StatefulSet/redis", "ConfigMap redis-scripts")

    def test_sentinel_master_name(self):
        env(container(self.o, "Deployment", "webnode"), "WEBNODE_REDIS_MASTER_NAME", "mymaster")
        self.assertFinds("Deployment/webnode", "master name mymaster")

    def test_dashboard_not_in_config_map(self):
        del get(self.o, "ConfigMap", "grafana-dashboards")["data"]["webtier-node.json"]
        self.assertFinds("grafana-dashboards lacks ['webtier-node.json']")

    def test_config_map_edited_copy(self):
        cm = get(self.o, "ConfigMap", "prometheus-config")
        cm["data"]["prometheus.yml"] = cm["data"]["prometheus.yml"].replace("scrape_interval: 5s", "scrape_interval: 9s")
        self.assertFinds("prometheus-config key prometheus.yml differs from monitoring/prometheus/prometheus.yml")

    def test_no_limits(self):
        del container(self.o, "Deployment", "grafana")["resources"]["limits"]
        self.assertFinds("Deployment/grafana", "no limits.cpu")

    def test_untagged_image(self):
        container(self.o, "StatefulSet", "redis")["image"] = "redis"
        self.assertFinds("StatefulSet/redis", "no fixed tag")

    # -- hardening ---------------------------------------------------------------
    def test_no_default_deny(self):
        self.o = [o for o in self.o if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny-ingress")]
        self.assertFinds("no default-deny ingress NetworkPolicy")

    def test_pods_no_policy_admits(self):
        self.o = [o for o in self.o if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "zookeeper")]
        self.assertFinds("StatefulSet/zookeeper", "no NetworkPolicy admits anything")

    def test_redis_open_to_every_client(self):
        del get(self.o, "NetworkPolicy", "redis")["spec"]["ingress"][0]["from"]
        self.assertFinds("NetworkPolicy/redis", "opens StatefulSet/redis to every client")

    def test_token_automounted(self):
        del get(self.o, "StatefulSet", "redis")["spec"]["template"]["spec"]["automountServiceAccountToken"]
        self.assertFinds("StatefulSet/redis", "service-account token")

    def test_token_in_the_serving_container(self):
        container(self.o, "Deployment", "webnode")["volumeMounts"].append(
            {"name": "api-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
        self.assertFinds("Deployment/webnode", "webnode mounts the API token")

    def test_token_for_an_unbound_account(self):
        get(self.o, "Deployment", "webnode")["spec"]["template"]["spec"]["serviceAccountName"] = "other"
        self.assertFinds("Deployment/webnode", "service account other, which no role binding names")

    def test_grafana_password_optional(self):
        c = container(self.o, "Deployment", "grafana")
        next(e for e in c["env"] if e["name"] == "GF_SECURITY_ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]["optional"] = True
        self.assertFinds("Deployment/grafana", "admin/admin")

    def test_grafana_without_password(self):
        c = container(self.o, "Deployment", "grafana")
        c["env"] = [e for e in c["env"] if e["name"] != "GF_SECURITY_ADMIN_PASSWORD"]
        self.assertFinds("Deployment/grafana", "no admin password")

    def test_grafana_anonymous(self):
        env(container(self.o, "Deployment", "grafana"), "GF_AUTH_ANONYMOUS_ENABLED", "true")
        self.assertFinds("Deployment/grafana", "anonymous access is enabled")

    def test_grafana_ini_anonymous(self):
        c = container(self.o, "Deployment", "grafana")
        c["env"] = [e for e in c["env"] if e["name"] != "GF_AUTH_ANONYMOUS_ENABLED"]
        cm = get(self.o, "ConfigMap", "grafana-config")
        cm["data"]["grafana.ini"] = cm["data"]["grafana.ini"].replace("enabled = false", "enabled = true")
        self.assertFinds("Deployment/grafana", "anonymous access is enabled")

    def test_redis_without_password(self):
        cm = get(self.o, "ConfigMap", "redis-scripts")
        cm["data"]["redis-start.sh"] = cm["data"]["redis-start.sh"].replace("requirepass", "# no password")
        self.assertFinds("StatefulSet/redis", "without requirepass")

    def test_redis_protected_mode_off(self):
        cm = get(self.o, "ConfigMap", "redis-scripts")
        cm["data"]["redis-start.sh"] = cm["data"]["redis-start.sh"].replace(
            "--protected-mode yes", "--protected-mode no")
        self.assertFinds("StatefulSet/redis", "--protected-mode no")

    def test_operator_secret_key_typo(self):
        vol = next(v for v in get(self.o, "Deployment", "webnode")["spec"]["template"]["spec"]["volumes"]
                   if v["name"] == "secrets")
        vol["secret"]["items"][0]["key"] = "redis-pasword"
        self.assertFinds("Deployment/webnode", "Secret webtier-redis has no key redis-pasword")

    def test_dev_redis_without_password(self):
        self.o = copy.deepcopy(RENDERS["dev"])
        c = container(self.o, "Deployment", "redis")
        c["command"] = ["redis-server", "--protected-mode", "no"]
        self.assertFinds("Deployment/redis", "without requirepass")
        self.assertFinds("Deployment/redis", "--protected-mode no")


if __name__ == "__main__":
    if not shutil.which("kubectl"):
        print("SKIP: kubectl is not installed (scripts/install-deps.sh, docs/kubernetes.md)")
        sys.exit(77)
    for overlay in ("dev", "ha"):
        RENDERS[overlay] = render(overlay)
    unittest.main(verbosity=2)
