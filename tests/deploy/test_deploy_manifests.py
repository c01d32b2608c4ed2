"""The production manifests (deploy/k8s), checked offline: kustomize renders each overlay, every
core object validates against the Kubernetes 1.32 schemas (`kubernetes-validate`, strict), the
Strimzi and CloudNativePG resources carry the fields those operators need, and a policy check
(no privileged pod, requests and limits everywhere, pinned images, probes, default-deny network
policies, a KafkaTopic for every topic the code declares).

The renderer, first found wins: ``$KUSTOMIZE`` (a kustomize binary), the pinned kustomize that
``devstack install`` builds into its cache (``go install sigs.k8s.io/kustomize/kustomize/v5``),
``kustomize`` on PATH, else ``kubectl kustomize`` when that kubectl embeds kustomize v5. Without
one the checks fail (never skip) and say how to get one.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from contracts.registry import all_streams
from devstack.config import default_cache_dir
from devstack.install import KUSTOMIZE_VERSION, kustomize_path

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
K8S_VERSION = "1.32.0"
Docs = tuple[dict[str, Any], ...]


class RendererMissing(RuntimeError):
    pass


def _kubectl_has_kustomize_v5(kubectl: str) -> bool:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"Kustomize Version: v5\.", out) is not None


@functools.cache
def renderer() -> tuple[str, ...]:
    """The command that renders a kustomization directory given as its last argument."""
    env = os.environ.get("KUSTOMIZE")
    if env:
        return (env, "build")
    cached = kustomize_path(default_cache_dir())
    if cached.is_file() and os.access(cached, os.X_OK):
        return (str(cached), "build")
    on_path = shutil.which("kustomize")
    if on_path:
        return (on_path, "build")
    kubectl = shutil.which("kubectl")
    if kubectl and _kubectl_has_kustomize_v5(kubectl):
        return (kubectl, "kustomize")
    raise RendererMissing(
        f"no kustomize renderer: run `make install` (devstack install builds kustomize "
        f"{KUSTOMIZE_VERSION} with `go install`), or put kustomize v5 on PATH, or set $KUSTOMIZE"
    )


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """Every object of an overlay, as rendered by kustomize."""
    cmd = [*renderer(), str(K8S / "overlays" / overlay)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (rc={proc.returncode}):\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def load_module(name: str, path: Path) -> ModuleType:
    """A script of deploy/ imported by path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def of_kind(docs: Docs, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def pod_templates(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    """(`Kind/name`, pod spec) of every Deployment, Job and CronJob."""
    found = [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]
    found += [
        (f"CronJob/{d['metadata']['name']}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for d in of_kind(docs, "CronJob")
    ]
    return found


def is_ops(d: dict[str, Any]) -> bool:
    return bool(d["metadata"]["labels"]["app.kubernetes.io/name"] == GENERATE.OPS)


GENERATE = load_module("deploy_k8s_generate", K8S / "generate.py")
SERVICES = {s.name: s for s in GENERATE.SERVICES}
DECLARED_TOPICS = {stream.topic for stream in all_streams()}

CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
OPERATOR_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
DSN_VARIABLE = re.compile(r"^(EVENTKIT_PG_DSN|OPS_PG_DSN_\w+)$")
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def docs(overlay: str) -> Docs:
    try:
        return render(overlay)
    except RendererMissing as e:
        pytest.fail(str(e))


def test_base_is_generated_from_its_tables() -> None:
    assert GENERATE.main(["--check"]) == 0, "run: .venv/bin/python deploy/k8s/generate.py"


def test_a_renderer_is_available() -> None:
    try:
        cmd = renderer()
    except RendererMissing as e:
        pytest.fail(str(e))
    assert Path(cmd[0]).exists()


def test_overlay_renders(docs: Docs) -> None:
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "NetworkPolicy", "KafkaTopic", "Cluster", "Job"} <= kinds


def test_every_object_is_a_core_kind_or_a_checked_operator_kind(docs: Docs) -> None:
    unknown = [
        f"{d['apiVersion']} {d['kind']}/{d['metadata']['name']}"
        for d in docs
        if d["apiVersion"] not in CORE_GROUPS and (d["apiVersion"], d["kind"]) not in OPERATOR_KINDS
    ]
    assert not unknown, "objects neither schema-validated nor asserted on"
    assert not of_kind(docs, "Secret"), "secret values never live in the manifests"


def test_core_objects_validate_against_the_kubernetes_schemas(docs: Docs) -> None:
    errors = []
    core = [d for d in docs if d["apiVersion"] in CORE_GROUPS]
    for d in core:
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {list(e.path)}")
    assert len(core) > 50
    assert not errors, "\n".join(errors)


def test_the_schema_check_rejects_a_broken_object() -> None:
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}, "bogus": 1},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# --- pods --------------------------------------------------------------------------------------


def test_no_privileged_pod_and_hardened_security_contexts(docs: Docs) -> None:
    for where, spec in pod_templates(docs):
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{where}: {flag}"
        assert spec.get("automountServiceAccountToken") is False, where
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser", 0) != 0, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            name = f"{where}/{c['name']}"
            assert sc.get("privileged", False) is False, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("runAsNonRoot") is True, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not sc.get("capabilities", {}).get("add"), name
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: /tmp must be an emptyDir"


def test_every_container_has_requests_and_limits(docs: Docs) -> None:
    for where, spec in pod_templates(docs):
        for c in spec["containers"] + spec.get("initContainers", []):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    value = res.get(part, {}).get(what)
                    assert value and QUANTITY.match(str(value)), (
                        f"{where}/{c['name']}: {part}.{what}"
                    )


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return re.search(r"@sha256:[0-9a-f]{64}$", image) is not None
    name, _, tag = image.rpartition(":")
    return (
        bool(name)
        and "/" not in tag
        and tag not in ("", "latest")
        and any(ch.isdigit() for ch in tag)
    )


def test_every_image_is_pinned_never_latest(docs: Docs) -> None:
    images = [c["image"] for _, spec in pod_templates(docs) for c in spec["containers"]]
    images += [d["spec"]["imageName"] for d in of_kind(docs, "Cluster")]
    assert images
    unpinned = [i for i in images if not _pinned(i)]
    assert not unpinned
    assert not _pinned("zikao/identity:latest") and not _pinned("zikao/identity")


def test_every_image_of_ours_comes_from_the_overlays_registry(docs: Docs, overlay: str) -> None:
    ours = [
        (where, c["image"])
        for where, spec in pod_templates(docs)
        for c in spec["containers"]
        if "cloudnative-pg" not in c["image"]
    ]
    registry = f"registry.zikao.example.invalid/{'zikao' if overlay == 'prod' else 'zikao-dev'}/"
    assert {image.split(":")[0].removeprefix(registry) for _, image in ours} == {
        *SERVICES,
        GENERATE.OPS,
    }
    assert all(image.startswith(registry) for _, image in ours), ours


def test_secrets_only_by_reference(docs: Docs) -> None:
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|DSN|TOKEN)(S)?$")
    for where, spec in pod_templates(docs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if secretish.search(e["name"]) and not e["name"].endswith("_KEY_ID"):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{where}: {e['name']}"
    for cm in of_kind(docs, "ConfigMap"):
        for key in cm["data"]:
            assert not secretish.search(key) or key.endswith("_KEY_ID"), f"{key} in a ConfigMap"


def test_no_pod_runs_in_development_mode(docs: Docs) -> None:
    """EVENTKIT_DEV_MODE lets a service start on the public development keys: never deployed."""
    configmaps = by_name(docs, "ConfigMap")
    for where, spec in pod_templates(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert "EVENTKIT_DEV_MODE" not in _env(c, configmaps), f"{where}: {c['name']}"
    for cm in configmaps.values():
        assert "EVENTKIT_DEV_MODE" not in cm.get("data", {}), cm["metadata"]["name"]


def _secret_refs(docs: Docs) -> set[str]:
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, spec in pod_templates(docs)
        for c in spec["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    return refs | {
        v["secret"]["secretName"]
        for _, spec in pod_templates(docs)
        for v in spec.get("volumes", [])
        if "secret" in v
    }


def test_every_referenced_secret_is_documented_for_the_operator(docs: Docs) -> None:
    ops = (ROOT / "docs" / "operations.md").read_text()
    refs = _secret_refs(docs)
    refs |= {
        ref["name"]
        for c in of_kind(docs, "Cluster")
        for ref in c["spec"]["backup"]["barmanObjectStore"]["s3Credentials"].values()
    }
    refs |= {t["secretName"] for i in of_kind(docs, "Ingress") for t in i["spec"].get("tls", [])}
    missing = sorted(r for r in refs if f"`{r}`" not in ops)
    assert not missing, "secrets not listed in docs/operations.md"


def test_the_database_secret_is_the_one_cloudnativepg_creates(docs: Docs) -> None:
    clusters = by_name(docs, "Cluster")
    for where, spec in pod_templates(docs):
        for c in spec["containers"]:
            dsns = [e for e in c["env"] if DSN_VARIABLE.match(e["name"])]
            if where.endswith(("/ops-lag", "/ops-toolbox")):
                # the ops tool opens every service's database, each by its own variable
                assert {e["name"] for e in dsns} == {
                    f"OPS_PG_DSN_{n.replace('-', '_').upper()}" for n in SERVICES
                }, where
            else:
                assert [e["name"] for e in dsns] == ["EVENTKIT_PG_DSN"], where
            for dsn in dsns:
                ref = dsn["valueFrom"]["secretKeyRef"]
                assert ref["key"] == "uri", where
                assert ref["name"].removesuffix("-app") in clusters, where


def test_commands_name_real_modules(docs: Docs) -> None:
    for where, spec in pod_templates(docs):
        cmd = spec["containers"][0]["command"]
        if cmd[0] == "uvicorn":
            module = cmd[1].split(":")[0]
        elif cmd[0] == "ops":  # the ops tool's console script, and the toolbox's idle process
            (script,) = entry_points(group="console_scripts", name="ops")
            module = script.value.split(":")[0]
        elif cmd == ["sleep", "infinity"]:
            assert where == "Deployment/ops-toolbox", where
            continue
        elif cmd[:2] == ["python", "-m"]:
            module = cmd[2]
        else:
            assert cmd[:2] == ["python", "/app/migrate.py"], where
            assert cmd[2] in SERVICES, where
            continue
        assert importlib.util.find_spec(module) is not None, f"{where}: {module}"


def test_each_service_has_api_worker_service_account_config_and_migration(docs: Docs) -> None:
    deployments = by_name(docs, "Deployment")
    for name in SERVICES:
        assert {f"{name}-api", f"{name}-worker"} <= set(deployments)
        assert name in by_name(docs, "ServiceAccount")
        assert f"{name}-config" in by_name(docs, "ConfigMap")
        assert f"{name}-api" in by_name(docs, "Service")
        assert f"{name}-migrate" in by_name(docs, "Job")
    for sa in of_kind(docs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_every_deployment_has_probes_on_the_real_endpoints(docs: Docs) -> None:
    for d in of_kind(docs, "Deployment"):
        c = d["spec"]["template"]["spec"]["containers"][0]
        if is_ops(d):  # an idle shell for operators, scaled to zero: nothing to probe
            assert d["spec"]["replicas"] == 0 and c["command"] == ["sleep", "infinity"]
            continue
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker":
            # the worker's own endpoint (eventkit.health), switched on by its port variable
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports == {"health": GENERATE.WORKER_HEALTH_PORT}
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["EVENTKIT_HEALTH_PORT"] == str(GENERATE.WORKER_HEALTH_PORT)
            assert {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe")} == {
                "startupProbe": {"path": "/healthz", "port": "health"},
                "livenessProbe": {"path": "/healthz", "port": "health"},
            }, d["metadata"]["name"]
            continue
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": GENERATE.API_PORT}
        paths = {
            kind: c[kind]["httpGet"]["path"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert paths == {
            "startupProbe": "/healthz",
            "livenessProbe": "/healthz",
            "readinessProbe": "/readyz",
        }, d["metadata"]["name"]


def test_topology_spread_on_every_deployment(docs: Docs) -> None:
    for d in of_kind(docs, "Deployment"):
        if is_ops(d):
            continue  # zero or one operator's pod
        constraints = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert {"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= keys
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        for c in constraints:
            assert c["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_hpa_per_api_and_pdb_per_api_and_worker(docs: Docs, overlay: str) -> None:
    deployments = {n: d for n, d in by_name(docs, "Deployment").items() if not is_ops(d)}
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == {f"{n}-api" for n in SERVICES}
    for h in hpas:
        assert h["spec"]["minReplicas"] >= (2 if overlay == "prod" else 1)
        assert any(m["type"] == "Resource" for m in h["spec"]["metrics"])
        assert "replicas" not in deployments[h["spec"]["scaleTargetRef"]["name"]]["spec"]
    pdbs = of_kind(docs, "PodDisruptionBudget")
    covered = {
        name
        for name, d in deployments.items()
        for p in pdbs
        if _selects(p["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    }
    assert covered == set(deployments)
    if overlay == "prod":
        for p in pdbs:
            assert p["spec"]["minAvailable"] >= 1  # at least one worker/API through a drain
        for name, d in deployments.items():
            if name.endswith("-worker"):
                assert d["spec"]["replicas"] >= 2


# --- network -----------------------------------------------------------------------------------


def _policies(docs: Docs) -> dict[str, dict[str, Any]]:
    return by_name(docs, "NetworkPolicy")


def test_default_deny_and_dns(docs: Docs) -> None:
    nps = _policies(docs)
    deny = nps["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    dns = nps["allow-dns"]["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}


def _ingress_sources(nps: dict[str, dict[str, Any]], svc: str) -> set[str]:
    """Who may reach a service's API: service names and namespaces."""
    sources = set()
    for rule in nps[f"{svc}-api-ingress"]["spec"]["ingress"]:
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                sources.add(
                    "ns:" + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                )
            else:
                sources.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return sources


def test_only_the_paths_the_architecture_needs(docs: Docs) -> None:
    nps = _policies(docs)
    ing, mon = f"ns:{GENERATE.INGRESS_NAMESPACE}", f"ns:{GENERATE.MONITORING_NAMESPACE}"
    assert _ingress_sources(nps, "application") == {ing, mon}
    assert _ingress_sources(nps, "review") == {ing, mon}
    assert _ingress_sources(nps, "identity") == {
        "application",
        "review",
        "media",
        "credential-verify",
        mon,
    }
    assert _ingress_sources(nps, "media") == {"application", "review", mon}
    # the ingress reaches credential-verify only for CHSI's callback (its Ingress has one path)
    assert _ingress_sources(nps, "credential-verify") == {"application", ing, mon}
    public = {
        name
        for name in SERVICES
        for rule in nps[f"{name}-egress"]["spec"]["egress"]
        for peer in rule["to"]
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    }
    assert public == {"credential-verify", "identity", "media"}  # providers (CHSI, NEEA, SMS); S3
    for name in SERVICES:
        rules = nps[f"{name}-egress"]["spec"]["egress"]
        pg = [r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 5432}]]
        assert pg[0]["to"][0]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": f"pg-{name}"}
        kafka = [r for r in rules if r["ports"] == [{"protocol": "TCP", "port": 9093}]]
        assert kafka[0]["to"] == [{"podSelector": {"matchLabels": GENERATE.KAFKA_POD_LABELS}}]
        for rule in rules:
            for peer in rule["to"]:
                block = peer.get("ipBlock")
                if block:
                    excluded = {ipaddress.ip_network(c) for c in block["except"]}
                    assert ipaddress.ip_network("10.0.0.0/8") in excluded


def test_ingress_routes_portal_and_review_ui_on_separate_hosts(docs: Docs) -> None:
    routes = {
        rule["host"]: path["backend"]["service"]["name"]
        for i in of_kind(docs, "Ingress")
        for rule in i["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    portal = [h for h, s in routes.items() if s == "application-api"]
    review = [h for h, s in routes.items() if s == "review-api"]
    assert len(portal) == 1 and len(review) == 1 and portal != review
    callback = by_name(docs, "Ingress")["chsi-callback"]["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in callback] == [
        ("/api/credentials/chsi/callback", "Exact")
    ]
    assert set(routes.values()) == {"application-api", "review-api", "credential-verify-api"}


# --- Strimzi -----------------------------------------------------------------------------------


def test_strimzi_kafka_in_kraft_mode_with_node_pools(docs: Docs, overlay: str) -> None:
    (kafka,) = of_kind(docs, "Kafka")
    ann = kafka["metadata"]["annotations"]
    assert ann["strimzi.io/node-pools"] == "enabled" and ann["strimzi.io/kraft"] == "enabled"
    spec = kafka["spec"]
    assert "zookeeper" not in spec
    assert re.match(r"^\d+\.\d+\.\d+$", spec["kafka"]["version"])
    listeners = spec["kafka"]["listeners"]
    assert listeners and all(
        {"name", "port", "type", "tls"} <= set(li) and re.match(r"^[a-z0-9]{1,11}$", li["name"])
        for li in listeners
    )
    assert "topicOperator" in spec["entityOperator"]
    pools = of_kind(docs, "KafkaNodePool")
    assert pools
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert set(pool["spec"]["roles"]) <= {"controller", "broker"}
        assert pool["spec"]["storage"]["type"] in ("jbod", "persistent-claim", "ephemeral")
        for v in pool["spec"]["storage"].get("volumes", []):
            assert {"id", "type", "size"} <= set(v) and QUANTITY.match(v["size"])
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    config = spec["kafka"]["config"]
    if overlay == "prod":
        assert brokers == 3
        assert config["default.replication.factor"] == 3
        assert config["min.insync.replicas"] == 2
        assert config["offsets.topic.replication.factor"] == 3
    assert config["auto.create.topics.enable"] is False
    assert config["min.insync.replicas"] <= config["default.replication.factor"] <= brokers


def test_every_declared_topic_has_its_kafka_topic(docs: Docs, overlay: str) -> None:
    (kafka,) = of_kind(docs, "Kafka")
    brokers = sum(p["spec"]["replicas"] for p in of_kind(docs, "KafkaNodePool"))
    topics = of_kind(docs, "KafkaTopic")
    names = [t["spec"].get("topicName", t["metadata"]["name"]) for t in topics]
    assert len(names) == len(set(names))
    assert set(names) == DECLARED_TOPICS
    for t in topics:
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert DNS_1123_SUBDOMAIN.match(t["metadata"]["name"])
        spec = t["spec"]
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1
        assert isinstance(spec["replicas"], int) and 1 <= spec["replicas"] <= brokers
        assert spec["config"]["retention.ms"] == -1  # the audit keeps the whole history
        assert spec["config"]["min.insync.replicas"] <= spec["replicas"]
        if overlay == "prod":
            assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2
            assert spec["partitions"] >= 3


def test_brokers_take_only_tls_clients_that_log_in(docs: Docs) -> None:
    (kafka,) = of_kind(docs, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["port"] == GENERATE.KAFKA_PORT
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in kafka["spec"]["entityOperator"]


def _env(c: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A container's environment: its ConfigMaps' values, then its own entries (raw)."""
    env: dict[str, Any] = {}
    for source in c.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    env.update({e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])})
    return env


def test_every_kafka_client_logs_in_as_its_own_user_over_tls(docs: Docs) -> None:
    configmaps = by_name(docs, "ConfigMap")
    users = by_name(docs, "KafkaUser")
    clients = set()
    for where, spec in pod_templates(docs):
        (c,) = spec["containers"]
        env = _env(c, configmaps)
        prefix = "OPS" if "OPS_KAFKA_BOOTSTRAP" in env else "EVENTKIT"
        if where.startswith("Job/"):
            continue  # migrations touch PostgreSQL only (they share the service's ConfigMap)
        user = env[f"{prefix}_KAFKA_USERNAME"]
        clients.add(user)
        assert env[f"{prefix}_KAFKA_BOOTSTRAP"].endswith(f":{GENERATE.KAFKA_PORT}"), where
        assert env[f"{prefix}_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", where
        assert env[f"{prefix}_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", where
        # the password is the one Strimzi's user operator writes for that user
        assert env[f"{prefix}_KAFKA_PASSWORD"] == {
            "secretKeyRef": {"name": user, "key": "password"}
        }, where
        assert user in users, where
        assert users[user]["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
        # the CA file is the cluster CA certificate Strimzi publishes
        ca_dir, ca_name = env[f"{prefix}_KAFKA_CA_FILE"].rsplit("/", 1)
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == ca_dir]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == "kafka-cluster-ca-cert", where
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": ca_name}], where
    assert clients == {*SERVICES, GENERATE.OPS} == set(users)


def _grants(user: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (a["resource"]["type"], a["resource"]["name"], op)
        for a in user["spec"]["authorization"]["acls"]
        for op in a["operations"]
    }


def test_each_user_may_do_what_its_code_does_and_no_more(docs: Docs) -> None:
    from eventkit.operations import discover, service_key

    users = by_name(docs, "KafkaUser")
    owners = {stream.topic: stream.service for stream in all_streams()}
    offers = discover()
    for name in SERVICES:
        grants = _grants(users[name])
        for a in users[name]["spec"]["authorization"]["acls"]:
            assert a["resource"]["patternType"] == "literal" and a["resource"]["name"] != "*"
        # it publishes its own streams' topics, and no other topic
        written = {r for kind, r, op in grants if kind == "topic" and op == "Write"}
        assert written == {t for t, owner in owners.items() if owner == name}, name
        # it reads what its projections read, in their consumer groups
        specs = offers[service_key(name)].described()
        for spec in specs:
            for topic in spec.projection.topics:
                assert {("topic", topic, "Read"), ("topic", topic, "Describe")} <= grants
            assert ("group", spec.consumer, "Read") in grants
        read = {r for kind, r, op in grants if kind == "topic" and op == "Read"}
        assert read == {t for spec in specs for t in spec.projection.topics}, name
        # nobody creates, deletes or reconfigures: the KafkaTopics own the topics
        assert {op for _, _, op in grants} <= {"Describe", "Read", "Write"}
        assert {kind for kind, _, _ in grants} <= {"topic", "group"}
    assert _grants(users[GENERATE.OPS]) == {("topic", "*", "Describe"), ("topic", "*", "Read")}


def test_workers_cannot_outnumber_partitions(docs: Docs) -> None:
    smallest = min(
        t["spec"]["partitions"]
        for t in of_kind(docs, "KafkaTopic")
        if t["spec"]["topicName"] not in GENERATE.LOW_VOLUME_TOPICS
    )
    for name, d in by_name(docs, "Deployment").items():
        if name.endswith("-worker"):
            assert d["spec"]["replicas"] <= smallest, name


# --- CloudNativePG -----------------------------------------------------------------------------


def test_cloudnativepg_clusters_with_backups(docs: Docs, overlay: str) -> None:
    clusters = by_name(docs, "Cluster")
    assert set(clusters) == {f"pg-{n}" for n in SERVICES}
    for name, c in clusters.items():
        spec = c["spec"]
        assert c["apiVersion"] == "postgresql.cnpg.io/v1"
        assert isinstance(spec["instances"], int) and spec["instances"] >= 1
        if overlay == "prod":
            assert spec["instances"] >= 3 and spec["minSyncReplicas"] >= 1
        assert spec["minSyncReplicas"] <= spec["maxSyncReplicas"] < spec["instances"] or (
            spec["maxSyncReplicas"] == 0
        )
        assert QUANTITY.match(spec["storage"]["size"])
        initdb = spec["bootstrap"]["initdb"]
        assert initdb["database"] and initdb["owner"]
        store = spec["backup"]["barmanObjectStore"]
        assert store["destinationPath"].startswith("s3://")
        assert store["destinationPath"].rstrip("/").endswith(name)  # one prefix per cluster
        for key in ("accessKeyId", "secretAccessKey"):
            assert {"name", "key"} <= set(store["s3Credentials"][key])
        assert re.match(r"^\d+[dwm]$", spec["backup"]["retentionPolicy"])
    backups = of_kind(docs, "ScheduledBackup")
    assert {b["spec"]["cluster"]["name"] for b in backups} == set(clusters)
    for b in backups:
        assert len(b["spec"]["schedule"].split()) == 6  # CNPG's cron has seconds


def test_migration_jobs_run_each_services_preparation() -> None:
    migrate = load_module("deploy_docker_migrate", DEPLOY / "docker" / "migrate.py")
    assert set(migrate.PACKAGES) == set(SERVICES)
    for name, package in migrate.PACKAGES.items():
        assert SERVICES[name].package == package
        assert callable(migrate.preparer(name))
    assert migrate.main(["nope"]) == 2


# --- monitoring and request-rate autoscaling -----------------------------------------------------


def test_request_rate_autoscaling_in_prod_only_and_where_measured(docs: Docs, overlay: str) -> None:
    for h in of_kind(docs, "HorizontalPodAutoscaler"):
        name = h["spec"]["scaleTargetRef"]["name"].removesuffix("-api")
        pods = [m for m in h["spec"]["metrics"] if m["type"] == "Pods"]
        target = SERVICES[name].rps_target
        if overlay == "dev" or target is None:
            # without the adapter an HPA cannot compute the metric and stops scaling down
            assert not pods, name
            continue
        assert pods == [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": GENERATE.REQUEST_RATE_METRIC},
                    "target": {"type": "AverageValue", "averageValue": str(target)},
                },
            }
        ], name
    assert bool(of_kind(docs, "PodMonitor")) == (overlay == "prod")


def test_the_adapter_rule_makes_the_metric_from_the_series_the_apis_export() -> None:
    values = yaml.safe_load(
        (K8S / "components" / "monitoring" / "prometheus-adapter-values.yaml").read_text()
    )
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == GENERATE.REQUEST_RATE_METRIC
    series = rule["seriesQuery"].split("{")[0]
    assert re.fullmatch(rule["name"]["matches"], series)
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    # the series is what an API really exposes, and the probes' own requests are left out
    exposition = asyncio.run(_exposition_after_traffic())
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == series
    }
    assert {"/things/{thing_id}", "/healthz"} <= routes
    excluded = re.search(r'route!~"([^"]+)"', rule["metricsQuery"])
    assert excluded is not None
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert re.fullmatch(excluded.group(1), probe)
    assert not re.fullmatch(excluded.group(1), "/things/{thing_id}")


async def _exposition_after_traffic() -> str:
    """A servicekit app serves one request of its own and a probe, then its /metrics."""
    import httpx

    from servicekit.app import create_app

    app = create_app(title="probe", version="0")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/things/7")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        return (await client.get("/metrics")).text


def test_pod_monitors_scrape_ports_the_pods_have_and_the_network_allows(
    docs: Docs, overlay: str
) -> None:
    if overlay != "prod":
        return
    nps = _policies(docs)
    pods = [d for d in of_kind(docs, "Deployment") if not is_ops(d)]
    for monitor in of_kind(docs, "PodMonitor"):
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics"
        selected = [
            d
            for d in pods
            if _selects(monitor["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == len(SERVICES), monitor["metadata"]["name"]
        for d in selected:
            template = d["spec"]["template"]
            (container,) = template["spec"]["containers"]
            port = {p["name"]: p["containerPort"] for p in container["ports"]}[endpoint["port"]]
            allowed = [
                np
                for np in nps.values()
                if "Ingress" in np["spec"]["policyTypes"]
                and _selects(np["spec"]["podSelector"], template["metadata"]["labels"])
                and any(
                    {"protocol": "TCP", "port": port} in rule.get("ports", [])
                    and any(
                        peer.get("namespaceSelector", {})
                        .get("matchLabels", {})
                        .get("kubernetes.io/metadata.name")
                        == GENERATE.MONITORING_NAMESPACE
                        for peer in rule["from"]
                    )
                    for rule in np["spec"].get("ingress", [])
                )
            ]
            assert allowed, f"{d['metadata']['name']}:{port} unreachable for Prometheus"


# --- the rollout in docs/operations.md ------------------------------------------------------------


def _matches(selector: str, labels: dict[str, str]) -> bool:
    """A kubectl label selector (`k=v`, `k!=v`, `!k`, `k`, `k in (..)`, `k notin (..)`)."""
    terms = re.findall(r"[^,(]+(?:\([^)]*\))?", selector)
    for raw in terms:
        term = raw.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = {v.strip() for v in m.group(3).split(",")}
            inside = labels.get(m.group(1)) in values
            if inside != (m.group(2) == "in"):
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w.-]*)", term):
            equal = labels.get(m.group(1)) == m.group(3)
            if equal != (m.group(2) != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def test_the_selector_reader_reads_selectors() -> None:
    labels = {"app.kubernetes.io/part-of": "zikao", "app.kubernetes.io/component": "api"}
    assert _matches("app.kubernetes.io/component in (api,ingress)", labels)
    assert not _matches("app.kubernetes.io/component in (worker)", labels)
    assert _matches("app.kubernetes.io/part-of=zikao,app.kubernetes.io/component", labels)
    assert not _matches("app.kubernetes.io/part-of=zikao,!app.kubernetes.io/component", labels)
    assert _matches("app.kubernetes.io/component!=worker", labels)


def test_the_documented_rollout_applies_every_object_exactly_once(docs: Docs) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    rollout = text[text.index("## Rollout") :].split("```bash", 1)[1].split("```", 1)[0]
    selectors = [
        m.group(1) or m.group(2)
        for m in re.finditer(r"apply -f /tmp/zikao\.yaml -l (?:'([^']+)'|(\S+))", rollout)
    ]
    assert len(selectors) >= 5
    for d in docs:
        labels = d["metadata"].get("labels", {})
        steps = [s for s in selectors if _matches(s, labels)]
        assert len(steps) == 1, f"{d['kind']}/{d['metadata']['name']} applied by {steps}"


def test_the_ops_cronjob_runs_a_real_ops_command_that_can_alert(docs: Docs) -> None:
    from ops.cli import build_parser

    cron = by_name(docs, "CronJob")["ops-lag"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0  # a failed run is the alert, not something to retry
    (container,) = job["template"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "ops"
    args = build_parser().parse_args(command[1:])
    assert args.command == "lag" and args.operator == "cronjob/ops-lag"
    assert (args.max_lag, args.max_stall) == (GENERATE.OPS_MAX_LAG, GENERATE.OPS_MAX_STALL)
    # it must outlast neither its schedule nor the stall it looks for
    assert job["activeDeadlineSeconds"] < 5 * 60 < GENERATE.OPS_MAX_STALL
    toolbox = by_name(docs, "Deployment")["ops-toolbox"]
    assert toolbox["spec"]["replicas"] == 0


def _api_container(docs: Docs, svc: str) -> dict[str, Any]:
    container: dict[str, Any] = by_name(docs, "Deployment")[f"{svc}-api"]["spec"]["template"][
        "spec"
    ]["containers"][0]
    return container


def _networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip()]


def test_the_persons_address_travels_from_the_ingress_through_the_uis_to_identity(
    docs: Docs,
) -> None:
    """Behind the ingress, the UIs' uvicorn must believe the ingress controller's X-Forwarded-For
    (else every person behind one UI pod shares the pod's login-throttle counter at identity),
    and only the controller's: uvicorn's proxy headers from FORWARDED_ALLOW_IPS, never '*'.
    Identity believes the UIs' forwarded address from the UIs' pods only."""
    configs = by_name(docs, "ConfigMap")

    def inside_the_cluster(nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
        return bool(nets) and all(n.is_private and n.prefixlen >= 8 for n in nets)

    for name, svc in sorted(SERVICES.items(), key=lambda item: not item[1].public):
        cmd = _api_container(docs, name)["command"]
        data = configs[f"{name}-config"]["data"]
        if svc.public:
            assert "--proxy-headers" in cmd and "--no-proxy-headers" not in cmd, name
            allowed = data.get("FORWARDED_ALLOW_IPS", "")
            assert allowed and "*" not in allowed, f"{name}: FORWARDED_ALLOW_IPS={allowed!r}"
            assert inside_the_cluster(_networks(allowed)), (name, allowed)
            assert not any(arg.startswith("--forwarded-allow-ips") for arg in cmd), name
        else:
            # uvicorn leaves the peer's address alone; identity judges its own proxies
            assert "--no-proxy-headers" in cmd, name
            assert "FORWARDED_ALLOW_IPS" not in data, name
    for ui in ("application", "review"):
        assert SERVICES[ui].public and "identity" in SERVICES[ui].calls
    trusted = _networks(configs["identity-config"]["data"]["IDENTITY_TRUSTED_PROXIES"])
    assert inside_the_cluster(trusted), trusted
