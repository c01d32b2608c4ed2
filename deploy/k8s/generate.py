"""Writes the kustomize base (`deploy/k8s/base/`) and the monitoring component
(`deploy/k8s/components/monitoring/`) from the tables below.

The base is plain YAML that kustomize and reviewers read; this script is the one place that says
what each service gets, so the five services cannot drift apart. Run it after editing a table:

    .venv/bin/python deploy/k8s/generate.py          # rewrite deploy/k8s/base/
    .venv/bin/python deploy/k8s/generate.py --check  # exit 1 when the committed base is stale

`tests/deploy` runs the check. Topics come from `contracts` (every stream the code declares).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contracts.registry import all_streams
from eventkit.operations import discover, service_key

K8S = Path(__file__).resolve().parent
BASE = K8S / "base"
MONITORING = K8S / "components" / "monitoring"
GENERATED = (BASE, MONITORING)
PART_OF = "zikao"
API_PORT = 8000
WORKER_HEALTH_PORT = 8001  # the worker's /healthz and /metrics (eventkit.health)
KAFKA_CLUSTER = "kafka"
# The brokers' one client listener: TLS, each service authenticated by SCRAM-SHA-512 as its own
# KafkaUser (Strimzi's user operator creates the user's Secret, named after it, key `password`),
# with ACLs for exactly the topics it publishes and reads. The cluster CA's certificate is in the
# Secret Strimzi creates, `<cluster>-cluster-ca-cert`, mounted at KAFKA_CA_DIR.
KAFKA_PORT = 9093
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:{KAFKA_PORT}"
KAFKA_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"
KAFKA_CA_DIR = "/etc/kafka-ca"
KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
KAFKA_POD_LABELS = {"strimzi.io/cluster": KAFKA_CLUSTER, "strimzi.io/kind": "Kafka"}
KAFKA_VERSION = "4.1.1"  # the broker version the local stack runs (tools/devstack/kafka/pom.xml)
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:15.18-standard-bookworm"
INGRESS_NAMESPACE = "ingress-nginx"
# The cluster's pod addresses: the ingress controller's pods, whose X-Forwarded-For the public
# APIs' uvicorn believes (--proxy-headers, FORWARDED_ALLOW_IPS), and the web UIs' pods, whose
# X-Forwarded-For identity believes (IDENTITY_TRUSTED_PROXIES). The NetworkPolicies admit only
# the ingress controller to the UIs and only our services to identity, so nothing else in this
# range reaches them; an overlay narrows it to the cluster's pod CIDR.
POD_NETWORK = "10.0.0.0/8"
MONITORING_NAMESPACE = "monitoring"
CNPG_NAMESPACE = "cnpg-system"
# Peers outside the cluster: the object store and the CHSI/NEEA providers are reached over HTTPS
# on public addresses; overlays narrow the CIDR when the operator knows the providers' ranges.
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
# Topics with more than a few thousand events per window: partitions bound the worker replicas
# that can consume in parallel, and adding partitions later moves keys (breaks per-stream order).
HIGH_VOLUME_PARTITIONS = 12
LOW_VOLUME_PARTITIONS = 3
LOW_VOLUME_TOPICS = {"identity.staff.v1", "application.window.v1"}


@dataclass(frozen=True)
class Svc:
    name: str  # Kubernetes name and EVENTKIT_SERVICE_NAME
    package: str  # Python package (`<package>.entrypoints.api:app`)
    api_cpu: tuple[str, str]  # request, limit
    api_mem: tuple[str, str]
    worker_cpu: tuple[str, str]
    worker_mem: tuple[str, str]
    hpa_max: int
    # Requests per second per API pod that the HPA's request-rate metric aims at (the monitoring
    # component, components/monitoring), from a measured throughput; None: CPU only, because no
    # throughput of this API has been measured (docs/benchmarks.md) to derive a target from.
    rps_target: int | None = None
    calls: tuple[str, ...] = ()  # services whose API this one calls over HTTP
    public: bool = False  # reached from the ingress controller
    external_https: bool = False  # egress to the external providers (CHSI/NEEA, the SMS gateway)
    s3: bool = False
    config: dict[str, str] = field(default_factory=dict)
    secrets: tuple[tuple[str, str, str, bool], ...] = ()  # env, secret, key, optional


SERVICES: tuple[Svc, ...] = (
    Svc(
        "identity",
        "identity_service",
        ("500m", "1"),
        ("384Mi", "768Mi"),
        ("100m", "500m"),
        ("192Mi", "384Mi"),
        hpa_max=10,
        external_https=True,  # the SMS gateway (registration codes, ADR 0017)
        config={
            "IDENTITY_PII_KEY_ID": "k1",
            "IDENTITY_SMS_URL": "https://sms.example.invalid",
            # the web UIs' pods forward the person's address (X-Forwarded-For) on login and
            # registration; identity believes it from them only (servicekit.context)
            "IDENTITY_TRUSTED_PROXIES": POD_NETWORK,
        },
        secrets=(
            ("IDENTITY_PII_KEY", "identity-keys", "pii-key", False),
            ("IDENTITY_PII_RETIRED_KEYS", "identity-keys", "pii-retired-keys", True),
            ("IDENTITY_LOOKUP_KEY", "identity-keys", "lookup-key", False),
            ("IDENTITY_CAPTCHA_SECRET", "identity-keys", "captcha-secret", False),
            ("IDENTITY_SMS_SECRET", "identity-sms", "sms-secret", False),
        ),
    ),
    Svc(
        "credential-verify",
        "credential_verify_service",
        ("250m", "1"),
        ("256Mi", "512Mi"),
        ("100m", "500m"),
        ("192Mi", "384Mi"),
        hpa_max=6,
        calls=("identity",),
        public=True,  # only CHSI's callback path, on its own host
        external_https=True,
        config={
            "CREDENTIAL_CHSI_URL": "https://chsi.example.invalid",
            "CREDENTIAL_NEEA_URL": "https://neea.example.invalid",
            "CREDENTIAL_PUBLIC_URL": "https://callbacks.zikao.example.invalid",
        },
        secrets=(
            ("CREDENTIAL_CHSI_SECRET", "credential-verify-providers", "chsi-secret", False),
            ("CREDENTIAL_NEEA_SECRET", "credential-verify-providers", "neea-secret", False),
            # the same key identity seals ID numbers' lookup hashes with
            ("CREDENTIAL_ID_FINGERPRINT_KEY", "identity-keys", "lookup-key", False),
        ),
    ),
    Svc(
        "media",
        "media_service",
        ("1", "2"),
        ("512Mi", "1Gi"),
        ("100m", "500m"),
        ("192Mi", "384Mi"),
        hpa_max=20,
        rps_target=5,  # 10.48 whole uploads/s per process on 2 CPUs (bench-media), halved
        calls=("identity",),
        s3=True,
        config={
            "MEDIA_S3_ENDPOINT": "https://s3.example.invalid",
            "MEDIA_S3_REGION": "cn-north-1",
            "MEDIA_BUCKET": "zikao-media",
            "MEDIA_PROCESS_WORKERS": "2",
        },
        secrets=(
            ("MEDIA_S3_ACCESS_KEY", "media-s3", "access-key", False),
            ("MEDIA_S3_SECRET_KEY", "media-s3", "secret-key", False),
        ),
    ),
    Svc(
        "application",
        "application_service",
        ("500m", "1"),
        ("256Mi", "512Mi"),
        ("250m", "1"),
        ("256Mi", "512Mi"),
        hpa_max=20,
        # 226.8 commands/s per process on 2 shared cores (bench-application); a pod has 0.5-1 CPU
        rps_target=60,
        calls=("identity", "credential-verify", "media"),
        public=True,
        config={
            "APPLICATION_SESSION_KEY_ID": "k1",
            "APPLICATION_PUBLIC_ORIGINS": "https://portal.zikao.example.invalid",
            "APPLICATION_PHOTO_ORIGINS": "https://s3.example.invalid",
        },
        secrets=(
            ("APPLICATION_SESSION_KEY", "application-session", "session-key", False),
            ("APPLICATION_OLD_SESSION_KEYS", "application-session", "old-session-keys", True),
        ),
    ),
    Svc(
        "review",
        "review_service",
        ("250m", "1"),
        ("256Mi", "512Mi"),
        ("250m", "1"),
        ("256Mi", "512Mi"),
        hpa_max=6,
        rps_target=25,  # one process renders a queue page in about 20 ms (bench-review), halved
        calls=("identity", "media"),
        public=True,
        config={
            "REVIEW_SESSION_KEY_ID": "k1",
            "REVIEW_PUBLIC_ORIGINS": "https://review.zikao.example.invalid",
            "REVIEW_PHOTO_ORIGINS": "https://s3.example.invalid",
        },
        secrets=(
            ("REVIEW_SESSION_KEY", "review-session", "session-key", False),
            ("REVIEW_OLD_SESSION_KEYS", "review-session", "old-session-keys", True),
        ),
    ),
)
BY_NAME = {s.name: s for s in SERVICES}
# The ops tool (tools/ops) as an image of its own with every service's package (its projections
# come from their entry points): a CronJob that alerts on lag, and a toolbox for operators.
OPS = "ops"
OPS_IMAGE = "zikao/ops:0.1.0"
OPS_LAG_SCHEDULE = "*/5 * * * *"
OPS_MAX_LAG = 10_000  # events behind: about 10 s of the measured consumer rate at peak
OPS_MAX_STALL = 600  # seconds a projection may stay behind without its checkpoint moving


def labels(svc: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def meta(name: str, svc: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": labels(svc, component), **extra}


def pg_cluster(svc: str) -> str:
    return f"pg-{svc}"


# --- pods ------------------------------------------------------------------------------------

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def secret_env(var: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": var, "valueFrom": {"secretKeyRef": ref}}


def kafka_client_config(prefix: str, user: str) -> dict[str, str]:
    """How a client reaches the brokers (eventkit's EVENTKIT_KAFKA_*, the ops tool's OPS_KAFKA_*);
    the password comes from the KafkaUser's Secret (`kafka_password_env`)."""
    return {
        f"{prefix}_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
        f"{prefix}_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        f"{prefix}_KAFKA_SASL_MECHANISM": KAFKA_SASL_MECHANISM,
        f"{prefix}_KAFKA_USERNAME": user,
        f"{prefix}_KAFKA_CA_FILE": f"{KAFKA_CA_DIR}/ca.crt",
    }


def kafka_password_env(prefix: str, user: str) -> dict[str, Any]:
    # Strimzi's user operator writes the KafkaUser's generated password to a Secret of its name
    return secret_env(f"{prefix}_KAFKA_PASSWORD", user, "password")


KAFKA_CA_VOLUME = {
    "name": "kafka-ca",
    "secret": {"secretName": KAFKA_CA_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
}
KAFKA_CA_MOUNT = {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True}
TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir


def env_of(s: Svc) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        # CloudNativePG creates `<cluster>-app` with the application user's URI
        secret_env("EVENTKIT_PG_DSN", f"{pg_cluster(s.name)}-app", "uri"),
        kafka_password_env("EVENTKIT", s.name),
    ]
    env.extend(secret_env(*spec) for spec in s.secrets)
    return env


def container(s: Svc, component: str, command: list[str]) -> dict[str, Any]:
    cpu, mem = (s.api_cpu, s.api_mem) if component == "api" else (s.worker_cpu, s.worker_mem)
    c: dict[str, Any] = {
        "name": component,
        "image": f"zikao/{s.name}:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "envFrom": [{"configMapRef": {"name": f"{s.name}-config"}}],
        "env": env_of(s),
        "resources": {
            "requests": {"cpu": cpu[0], "memory": mem[0]},
            "limits": {"cpu": cpu[1], "memory": mem[1]},
        },
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [TMP_MOUNT, KAFKA_CA_MOUNT],
    }
    port = "http" if component == "api" else "health"

    def probe(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": port}, "timeoutSeconds": 3, **timing}

    if component == "api":
        c["ports"] = [{"name": "http", "containerPort": API_PORT, "protocol": "TCP"}]
        # /healthz: the event loop answers; /readyz: PostgreSQL and Kafka reachable.
        c["startupProbe"] = probe("/healthz", periodSeconds=2, failureThreshold=60)
        c["livenessProbe"] = probe("/healthz", periodSeconds=10, failureThreshold=3)
        c["readinessProbe"] = probe("/readyz", periodSeconds=5, failureThreshold=2)
    elif component == "worker":
        # The worker's own endpoint (eventkit.health): 503 once a relay or consumer has kept
        # crashing for EVENTKIT_HEALTH_DOWN_AFTER seconds; it serves no traffic, so no readiness.
        c["ports"] = [{"name": "health", "containerPort": WORKER_HEALTH_PORT, "protocol": "TCP"}]
        c["env"] = [
            *c["env"],
            {"name": "EVENTKIT_HEALTH_PORT", "value": str(WORKER_HEALTH_PORT)},
            {"name": "EVENTKIT_HEALTH_DOWN_AFTER", "value": "120"},
            # a relay, consumer or sweep whose loop stops turning is restarted in the process
            {"name": "EVENTKIT_HEALTH_STALL_AFTER", "value": "300"},
        ]
        c["startupProbe"] = probe("/healthz", periodSeconds=5, failureThreshold=60)
        c["livenessProbe"] = probe("/healthz", periodSeconds=20, failureThreshold=3)
    return c


def hardened_pod(account: str, main: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A pod of one container under `account`: no API token, non-root, /tmp and the Kafka CA."""
    return {
        "serviceAccountName": account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": [main],
        "volumes": [TMP_VOLUME, KAFKA_CA_VOLUME],
        **extra,
    }


def pod_spec(s: Svc, component: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return hardened_pod(s.name, container(s, component, command), **extra)


def spread(s: Svc, component: str) -> list[dict[str, Any]]:
    sel = {"matchLabels": labels(s.name, component)}
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": sel,
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": sel,
        },
    ]


def deployment(s: Svc, component: str, replicas: int | None, command: list[str]) -> dict[str, Any]:
    name = f"{s.name}-{component}"
    annotations: dict[str, str] = {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(
            name, s.name, component, **({"annotations": annotations} if annotations else {})
        ),
        "spec": {
            # the API's replicas belong to its HPA: an apply must not reset them
            **({"replicas": replicas} if replicas is not None else {}),
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels(s.name, component)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels(s.name, component)},
                "spec": pod_spec(
                    s,
                    component,
                    command,
                    terminationGracePeriodSeconds=30 if component == "api" else 60,
                    topologySpreadConstraints=spread(s, component),
                ),
            },
        },
    }


def service_docs(s: Svc) -> list[dict[str, Any]]:
    api_cmd = [
        "uvicorn",
        f"{s.package}.entrypoints.api:app",
        "--host",
        "0.0.0.0",  # noqa: S104 - inside the pod
        "--port",
        str(API_PORT),
        "--no-server-header",
        # Public APIs: the person's address from the ingress controller's X-Forwarded-For
        # (believed from FORWARDED_ALLOW_IPS only), so that the UIs forward it to identity; the
        # others take the peer's address as it is (identity judges its own proxies).
        "--proxy-headers" if s.public else "--no-proxy-headers",
    ]
    worker_cmd = ["python", "-m", f"{s.package}.entrypoints.worker"]
    config = {
        "EVENTKIT_SERVICE_NAME": s.name,
        **kafka_client_config("EVENTKIT", s.name),
        "EVENTKIT_TOPIC_PARTITIONS": str(HIGH_VOLUME_PARTITIONS),
        "EVENTKIT_TOPIC_REPLICATION": "3",
        "EVENTKIT_PG_POOL_MAX": "10",
        "EVENTKIT_LOG_JSON": "true",
        "EVENTKIT_LOG_LEVEL": "INFO",
        **{
            f"SERVICE_URL_{c.upper().replace('-', '_')}": f"http://{c}-api:{API_PORT}"
            for c in s.calls
        },
        **({"FORWARDED_ALLOW_IPS": POD_NETWORK} if s.public else {}),
        **s.config,
    }
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(s.name, s.name, "service-account"),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{s.name}-config", s.name, "config"),
            "data": dict(sorted(config.items())),
        },
        deployment(s, "api", None, api_cmd),
        deployment(s, "worker", 2, worker_cmd),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(f"{s.name}-api", s.name, "api"),
            "spec": {
                "type": "ClusterIP",
                "selector": labels(s.name, "api"),
                "ports": [{"name": "http", "port": API_PORT, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta(f"{s.name}-api", s.name, "api"),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": f"{s.name}-api",
                },
                "minReplicas": 2,
                "maxReplicas": s.hpa_max,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 65},
                        },
                    }
                ],
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
                    },
                    "scaleDown": {"stabilizationWindowSeconds": 300},
                },
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(f"{s.name}-api", s.name, "api"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(s.name, "api")}},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(f"{s.name}-worker", s.name, "worker"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(s.name, "worker")}},
        },
        migrate_job(s),
        *network_policies(s),
    ]
    return docs


def migrate_job(s: Svc) -> dict[str, Any]:
    spec = pod_spec(s, "migrate", ["python", "/app/migrate.py", s.name], restartPolicy="Never")
    spec["containers"][0]["resources"] = {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{s.name}-migrate", s.name, "migrate"),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": labels(s.name, "migrate")}, "spec": spec},
        },
    }


# --- network policies ------------------------------------------------------------------------


def ns_selector(ns: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def public_https() -> dict[str, Any]:
    return {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}


def network_policies(s: Svc) -> list[dict[str, Any]]:
    name_sel = {"matchLabels": {"app.kubernetes.io/name": s.name}}
    callers = [c.name for c in SERVICES if s.name in c.calls]
    api_from: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": c}}} for c in callers
    ]
    if s.public:
        api_from.append(ns_selector(INGRESS_NAMESPACE))
    api_from.append(ns_selector(MONITORING_NAMESPACE))  # Prometheus scrapes /metrics
    egress: list[dict[str, Any]] = [
        {
            "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": pg_cluster(s.name)}}}],
            "ports": tcp(5432),
        },
        {
            "to": [{"podSelector": {"matchLabels": KAFKA_POD_LABELS}}],
            "ports": tcp(KAFKA_PORT),
        },
    ]
    for c in s.calls:
        egress.append(
            {
                "to": [{"podSelector": {"matchLabels": labels(c, "api")}}],
                "ports": tcp(API_PORT),
            }
        )
    if s.s3 or s.external_https:
        egress.append({"to": [public_https()], "ports": tcp(443)})
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(f"{s.name}-api-ingress", s.name, "network"),
            "spec": {
                "podSelector": {"matchLabels": labels(s.name, "api")},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": api_from, "ports": tcp(API_PORT)}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(f"{s.name}-worker-ingress", s.name, "network"),
            "spec": {
                "podSelector": {"matchLabels": labels(s.name, "worker")},
                "policyTypes": ["Ingress"],
                # Prometheus scrapes the worker's /metrics; nothing else calls a worker
                "ingress": [
                    {
                        "from": [ns_selector(MONITORING_NAMESPACE)],
                        "ports": tcp(WORKER_HEALTH_PORT),
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(f"{s.name}-egress", s.name, "network"),
            "spec": {"podSelector": name_sel, "policyTypes": ["Egress"], "egress": egress},
        },
    ]


def ops_docs() -> list[dict[str, Any]]:
    """The ops tool in the cluster: `ops lag` every few minutes as a CronJob (a failed Job is the
    alert: kube-state-metrics' `kube_job_status_failed`), and `ops-toolbox`, scaled to zero until an
    operator needs it (`kubectl scale deploy/ops-toolbox --replicas=1`, then `kubectl exec`)."""
    env: list[dict[str, Any]] = [
        secret_env(f"OPS_PG_DSN_{service_key(s.name).upper()}", f"{pg_cluster(s.name)}-app", "uri")
        for s in SERVICES
    ]
    env.append(kafka_password_env("OPS", OPS))
    config = {**kafka_client_config("OPS", OPS), "TZ": "Asia/Shanghai"}

    def ops_container(name: str, command: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "image": OPS_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": command,
            "envFrom": [{"configMapRef": {"name": f"{OPS}-config"}}],
            "env": env,
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},  # a rebuild holds a batch in memory
            },
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [TMP_MOUNT, KAFKA_CA_MOUNT],
        }

    def ops_pod(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
        return hardened_pod(OPS, ops_container(name, command), **extra)

    lag_command = [
        "ops",
        "--operator",
        "cronjob/ops-lag",
        "lag",
        "--max-lag",
        str(OPS_MAX_LAG),
        "--max-stall",
        str(OPS_MAX_STALL),
        "--json",
    ]
    egress = [
        {
            "to": [
                {"podSelector": {"matchLabels": {"cnpg.io/cluster": pg_cluster(s.name)}}}
                for s in SERVICES
            ],
            "ports": tcp(5432),
        },
        {
            "to": [{"podSelector": {"matchLabels": KAFKA_POD_LABELS}}],
            "ports": tcp(KAFKA_PORT),
        },
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(OPS, OPS, "service-account"),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{OPS}-config", OPS, "config"),
            "data": dict(sorted(config.items())),
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta(f"{OPS}-lag", OPS, OPS),
            "spec": {
                "schedule": OPS_LAG_SCHEDULE,
                "timeZone": "Asia/Shanghai",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 120,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 5,
                "jobTemplate": {
                    "metadata": {"labels": labels(OPS, OPS)},
                    "spec": {
                        "backoffLimit": 0,
                        "activeDeadlineSeconds": 240,
                        "template": {
                            "metadata": {"labels": labels(OPS, OPS)},
                            "spec": ops_pod("lag", lag_command, restartPolicy="Never"),
                        },
                    },
                },
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(f"{OPS}-toolbox", OPS, OPS),
            "spec": {
                "replicas": 0,
                "revisionHistoryLimit": 2,
                "selector": {"matchLabels": labels(OPS, "toolbox")},
                "template": {
                    "metadata": {"labels": labels(OPS, "toolbox")},
                    "spec": ops_pod(
                        "toolbox", ["sleep", "infinity"], terminationGracePeriodSeconds=5
                    ),
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(f"{OPS}-egress", OPS, "network"),
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": OPS}},
                "policyTypes": ["Egress"],
                "egress": egress,
            },
        },
    ]


def platform_policies() -> list[dict[str, Any]]:
    def np(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": spec,
        }

    kube_api = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(443, 6443)}
    pg_pods = {
        "podSelector": {"matchExpressions": [{"key": "cnpg.io/cluster", "operator": "Exists"}]}
    }
    kafka_pods = {"podSelector": {"matchLabels": {"strimzi.io/cluster": KAFKA_CLUSTER}}}
    zikao_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}
    return [
        np(
            "default-deny-all",
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        ),
        np(
            "allow-dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                **ns_selector("kube-system"),
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
        np(
            "postgres",
            {
                "podSelector": pg_pods["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    # each service's pods reach their own cluster (their egress policy says which)
                    {"from": [zikao_pods], "ports": tcp(5432)},
                    {"from": [pg_pods], "ports": tcp(5432)},  # streaming replication
                    {"from": [ns_selector(CNPG_NAMESPACE)], "ports": tcp(5432, 8000)},
                ],
                "egress": [
                    {"to": [pg_pods], "ports": tcp(5432)},
                    {"to": [public_https()], "ports": tcp(443)},  # barman to object storage
                    kube_api,  # the instance manager talks to the API server
                ],
            },
        ),
        np(
            "kafka",
            {
                "podSelector": kafka_pods["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": [zikao_pods], "ports": tcp(KAFKA_PORT)},
                    {"from": [kafka_pods]},  # brokers, controllers, entity operator
                    {"from": [ns_selector("strimzi")]},  # the cluster operator
                    {"from": [ns_selector(MONITORING_NAMESPACE)], "ports": tcp(9404)},
                ],
                "egress": [{"to": [kafka_pods]}, kube_api],
            },
        ),
    ]


def ingresses() -> list[dict[str, Any]]:
    def ing(name: str, host: str, svc: str, path: str, path_type: str, body: str) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": name,
                "labels": labels(svc, "ingress"),
                "annotations": {
                    "nginx.ingress.kubernetes.io/proxy-body-size": body,
                    "nginx.ingress.kubernetes.io/ssl-redirect": "true",
                },
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                "rules": [
                    {
                        "host": host,
                        "http": {
                            "paths": [
                                {
                                    "path": path,
                                    "pathType": path_type,
                                    "backend": {
                                        "service": {"name": f"{svc}-api", "port": {"name": "http"}}
                                    },
                                }
                            ]
                        },
                    }
                ],
            },
        }

    return [
        # the candidate portal (a certificate photo is at most 4 MiB in the multipart body)
        ing("portal", "portal.zikao.example.invalid", "application", "/", "Prefix", "5m"),
        ing("review", "review.zikao.example.invalid", "review", "/", "Prefix", "1m"),
        # CHSI posts its signed decisions here, and nothing else of credential-verify is public
        ing(
            "chsi-callback",
            "callbacks.zikao.example.invalid",
            "credential-verify",
            "/api/credentials/chsi/callback",
            "Exact",
            "256k",
        ),
    ]


# --- Strimzi and CloudNativePG -------------------------------------------------------------


def kafka_docs() -> list[dict[str, Any]]:
    lab = {"app.kubernetes.io/part-of": PART_OF}
    pool = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaNodePool",
        "metadata": {"name": "dual-role", "labels": {**lab, "strimzi.io/cluster": KAFKA_CLUSTER}},
        "spec": {
            "replicas": 3,
            "roles": ["controller", "broker"],
            "storage": {
                "type": "jbod",
                "volumes": [
                    {
                        "id": 0,
                        "type": "persistent-claim",
                        "size": "200Gi",
                        "deleteClaim": False,
                        "kraftMetadata": "shared",
                    }
                ],
            },
            "resources": {
                "requests": {"cpu": "1", "memory": "4Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            },
            "jvmOptions": {"-Xms": "2g", "-Xmx": "2g"},
            "template": {
                "pod": {
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {
                                "matchLabels": {
                                    "strimzi.io/cluster": KAFKA_CLUSTER,
                                    "strimzi.io/pool-name": "dual-role",
                                }
                            },
                        }
                    ]
                }
            },
        },
    }
    kafka = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "Kafka",
        "metadata": {
            "name": KAFKA_CLUSTER,
            "labels": lab,
            "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"},
        },
        "spec": {
            "kafka": {
                "version": KAFKA_VERSION,
                "listeners": [
                    # the only client listener: TLS, and every client logs in as its KafkaUser
                    {
                        "name": "tls",
                        "port": KAFKA_PORT,
                        "type": "internal",
                        "tls": True,
                        "authentication": {"type": "scram-sha-512"},
                    }
                ],
                # each KafkaUser's ACLs say what it may read and write; nothing else is allowed
                "authorization": {"type": "simple"},
                "config": {
                    "default.replication.factor": 3,
                    "min.insync.replicas": 2,
                    "offsets.topic.replication.factor": 3,
                    "transaction.state.log.replication.factor": 3,
                    "transaction.state.log.min.isr": 2,
                    "auto.create.topics.enable": False,
                    "unclean.leader.election.enable": False,
                },
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
            "cruiseControl": {},
        },
    }
    topics = []
    for stream in sorted(all_streams(), key=lambda s: s.topic):
        partitions = (
            LOW_VOLUME_PARTITIONS if stream.topic in LOW_VOLUME_TOPICS else HIGH_VOLUME_PARTITIONS
        )
        topics.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {
                    "name": stream.topic.replace(".", "-"),
                    "labels": {**lab, "strimzi.io/cluster": KAFKA_CLUSTER},
                    "annotations": {"zikao.example/owner": stream.service},
                },
                "spec": {
                    "topicName": stream.topic,
                    "partitions": partitions,
                    "replicas": 3,
                    "config": {
                        "retention.ms": -1,  # the audit needs the whole history
                        "retention.bytes": -1,
                        "cleanup.policy": "delete",
                        "min.insync.replicas": 2,
                    },
                },
            }
        )
    return [kafka, pool, *topics, *kafka_users()]


def acl(kind: str, name: str, *operations: str) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": "literal"},
        "operations": list(operations),
        "host": "*",
    }


def kafka_access(svc: str) -> tuple[list[str], list[str], list[str]]:
    """What a service does on Kafka: the topics it publishes (its own streams, from `contracts`),
    the topics it reads and its consumer groups (its projections, from `eventkit.operations`)."""
    writes = sorted({st.topic for st in all_streams() if st.service == svc})
    offer = discover().get(service_key(svc))
    specs = offer.described() if offer is not None else ()
    reads = sorted({t for spec in specs for t in spec.projection.topics})
    groups = sorted(spec.consumer for spec in specs)
    return writes, reads, groups


def kafka_user(name: str, acls: list[dict[str, Any]]) -> dict[str, Any]:
    # platform (no component label): it is applied with the Kafka cluster, before any pod that
    # needs the Secret the user operator writes
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": PART_OF,
                "strimzi.io/cluster": KAFKA_CLUSTER,
            },
        },
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def kafka_users() -> list[dict[str, Any]]:
    """One KafkaUser per service with the least its relay and consumers need: Write on its own
    topics (idempotent producers need no more since Kafka 3.0), Read on the topics and groups of
    its projections, Describe on both (metadata, offsets). Topics are created by the KafkaTopics,
    never by a service, so no one may Create. The ops tool reads every topic, in no group."""
    users = []
    for s in SERVICES:
        writes, reads, groups = kafka_access(s.name)
        acls = [acl("topic", t, "Describe", "Write") for t in writes if t not in reads]
        acls += [
            acl("topic", t, "Describe", "Read", *(["Write"] if t in writes else [])) for t in reads
        ]
        acls += [acl("group", g, "Read") for g in groups]
        users.append(kafka_user(s.name, acls))
    users.append(kafka_user(OPS, [acl("topic", "*", "Describe", "Read")]))
    return users


def postgres_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for s in SERVICES:
        name = pg_cluster(s.name)
        lab = {"app.kubernetes.io/name": s.name, "app.kubernetes.io/part-of": PART_OF}
        docs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Cluster",
                "metadata": {"name": name, "labels": lab},
                "spec": {
                    "instances": 3,
                    "imageName": POSTGRES_IMAGE,
                    "primaryUpdateStrategy": "unsupervised",
                    "minSyncReplicas": 1,
                    "maxSyncReplicas": 1,
                    "postgresql": {
                        "parameters": {
                            "max_connections": "300",
                            "shared_buffers": "1GB",
                            "synchronous_commit": "on",
                        }
                    },
                    "bootstrap": {"initdb": {"database": s.name.replace("-", "_"), "owner": "app"}},
                    "storage": {"size": "50Gi"},
                    "walStorage": {"size": "20Gi"},
                    "resources": {
                        "requests": {"cpu": "1", "memory": "4Gi"},
                        "limits": {"cpu": "2", "memory": "4Gi"},
                    },
                    "affinity": {"topologyKey": "topology.kubernetes.io/zone"},
                    "monitoring": {"enablePodMonitor": False},
                    "backup": {
                        "retentionPolicy": "30d",
                        "barmanObjectStore": {
                            "destinationPath": f"s3://zikao-pg-backups/{name}",
                            "endpointURL": "https://s3.example.invalid",
                            "s3Credentials": {
                                "accessKeyId": {"name": "pg-backup-s3", "key": "access-key"},
                                "secretAccessKey": {"name": "pg-backup-s3", "key": "secret-key"},
                            },
                            "wal": {"compression": "gzip", "maxParallel": 4},
                            "data": {"compression": "gzip"},
                        },
                    },
                },
            }
        )
        docs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "ScheduledBackup",
                "metadata": {"name": f"{name}-daily", "labels": lab},
                "spec": {
                    "schedule": "0 0 2 * * *",  # CNPG's six-field cron: 02:00 every day
                    "backupOwnerReference": "self",
                    "method": "barmanObjectStore",
                    "cluster": {"name": name},
                },
            }
        )
    return docs


# --- monitoring: scraping, and the request-rate metric of the HPAs ----------------------------

# The Pods metric prometheus-adapter derives from the APIs' own request histogram (servicekit's
# `http_request_duration_seconds`, label `route`), probes and scrapes left out.
REQUEST_RATE_METRIC = "http_requests_per_second"
REQUEST_SERIES = "http_request_duration_seconds_count"
NOT_TRAFFIC = "/healthz|/readyz|/metrics"


def pod_monitors() -> list[dict[str, Any]]:
    def monitor(component: str, port: str) -> dict[str, Any]:
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {
                "name": f"zikao-{component}s",
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    "app.kubernetes.io/component": "monitoring",
                },
            },
            "spec": {
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/part-of": PART_OF,
                        "app.kubernetes.io/component": component,
                    }
                },
                "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "15s"}],
            },
        }

    return [monitor("api", "http"), monitor("worker", "health")]


def monitoring_component() -> dict[str, Any]:
    """A kustomize Component (the prod overlay includes it): the PodMonitors, and a second HPA
    metric, requests per second per pod, on each API with a measured target."""
    patches = []
    for s in SERVICES:
        if s.rps_target is None:
            continue
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": REQUEST_RATE_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(s.rps_target)},
            },
        }
        patches.append(
            {
                "target": {"kind": "HorizontalPodAutoscaler", "name": f"{s.name}-api"},
                "patch": yaml.safe_dump(
                    [{"op": "add", "path": "/spec/metrics/-", "value": metric}],
                    sort_keys=False,
                    width=100,
                ),
            }
        )
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["pod-monitors.yaml"],
        "patches": patches,
    }


def adapter_values() -> dict[str, Any]:
    """prometheus-adapter's Helm values: the rule that makes REQUEST_RATE_METRIC a Pods metric."""
    return {
        "rules": {
            "default": False,
            "custom": [
                {
                    "seriesQuery": f'{REQUEST_SERIES}{{namespace!="",pod!=""}}',
                    "resources": {
                        "overrides": {
                            "namespace": {"resource": "namespace"},
                            "pod": {"resource": "pod"},
                        }
                    },
                    "name": {"matches": f"^{REQUEST_SERIES}$", "as": REQUEST_RATE_METRIC},
                    "metricsQuery": (
                        f'sum(rate(<<.Series>>{{<<.LabelMatchers>>,route!~"{NOT_TRAFFIC}"}}[2m]))'
                        " by (<<.GroupBy>>)"
                    ),
                }
            ],
        }
    }


# --- writing ---------------------------------------------------------------------------------

HEADER = "# Generated by deploy/k8s/generate.py from its tables: edit those, then run it.\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (kustomize's inline patches) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def dump(docs: list[dict[str, Any]]) -> str:
    return HEADER + "---\n".join(to_yaml(d) for d in docs)


def files() -> dict[Path, str]:
    """Every generated file by its path."""
    base = {
        "platform/network-policies.yaml": dump(platform_policies()),
        "platform/ingress.yaml": dump(ingresses()),
        "platform/kafka.yaml": dump(kafka_docs()),
        "platform/postgres.yaml": dump(postgres_docs()),
        "ops/ops.yaml": dump(ops_docs()),
    }
    for s in SERVICES:
        base[f"services/{s.name}.yaml"] = dump(service_docs(s))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/managed-by": "kustomize"}}],
        "resources": sorted(base),
    }
    base["kustomization.yaml"] = HEADER + to_yaml(kustomization)
    out = {BASE / rel: text for rel, text in base.items()}
    out[MONITORING / "kustomization.yaml"] = HEADER + to_yaml(monitoring_component())
    out[MONITORING / "pod-monitors.yaml"] = dump(pod_monitors())
    out[MONITORING / "prometheus-adapter-values.yaml"] = (
        HEADER
        + "# Helm values for prometheus-community/prometheus-adapter (installed by the platform\n"
        + "# team): the rule behind the HPAs' request-rate metric. Not a Kubernetes resource.\n"
        + to_yaml(adapter_values())
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the base is stale")
    args = parser.parse_args(argv)
    wanted = files()
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    extra = sorted(
        p for root in GENERATED if root.is_dir() for p in root.rglob("*.yaml") if p not in wanted
    )

    def shown(path: Path) -> str:
        return str(path.relative_to(K8S.parent.parent))

    if args.check:
        for path in stale:
            print(f"stale: {shown(path)}", file=sys.stderr)
        for path in extra:
            print(f"not generated: {shown(path)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {shown(path)}")
    for path in extra:
        path.unlink()
        print(f"removed {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
