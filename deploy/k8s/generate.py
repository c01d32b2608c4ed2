"""Writes the kustomize base (`deploy/k8s/base/`) from the tables below.

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

BASE = Path(__file__).resolve().parent / "base"
PART_OF = "zikao"
API_PORT = 8000
WORKER_HEALTH_PORT = 8001  # the worker's /healthz and /metrics (eventkit.health)
KAFKA_CLUSTER = "kafka"
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:9092"
KAFKA_VERSION = "4.1.1"  # the broker version the local stack runs (tools/devstack/kafka/pom.xml)
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:15.18-standard-bookworm"
INGRESS_NAMESPACE = "ingress-nginx"
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
    calls: tuple[str, ...] = ()  # services whose API this one calls over HTTP
    public: bool = False  # reached from the ingress controller
    external_https: bool = False  # egress to the CHSI/NEEA providers
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
        config={
            "IDENTITY_PII_KEY_ID": "k1",
            # the web UIs' pods forward the candidate's address (X-Forwarded-For)
            "IDENTITY_TRUSTED_PROXIES": "10.0.0.0/8",
        },
        secrets=(
            ("IDENTITY_PII_KEY", "identity-keys", "pii-key", False),
            ("IDENTITY_PII_RETIRED_KEYS", "identity-keys", "pii-retired-keys", True),
            ("IDENTITY_LOOKUP_KEY", "identity-keys", "lookup-key", False),
            ("IDENTITY_CAPTCHA_SECRET", "identity-keys", "captcha-secret", False),
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


def env_of(s: Svc) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "EVENTKIT_PG_DSN",
            # CloudNativePG creates `<cluster>-app` with the application user's URI
            "valueFrom": {"secretKeyRef": {"name": f"{pg_cluster(s.name)}-app", "key": "uri"}},
        }
    ]
    for var, secret, key, optional in s.secrets:
        ref: dict[str, Any] = {"name": secret, "key": key}
        if optional:
            ref["optional"] = True
        env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
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
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
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
        ]
        c["startupProbe"] = probe("/healthz", periodSeconds=5, failureThreshold=60)
        c["livenessProbe"] = probe("/healthz", periodSeconds=20, failureThreshold=3)
    return c


def pod_spec(s: Svc, component: str, command: list[str], **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": s.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": POD_SECURITY,
        "containers": [container(s, component, command)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        **extra,
    }
    return spec


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
    ]
    worker_cmd = ["python", "-m", f"{s.package}.entrypoints.worker"]
    config = {
        "EVENTKIT_SERVICE_NAME": s.name,
        "EVENTKIT_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
        "EVENTKIT_TOPIC_PARTITIONS": str(HIGH_VOLUME_PARTITIONS),
        "EVENTKIT_TOPIC_REPLICATION": "3",
        "EVENTKIT_PG_POOL_MAX": "10",
        "EVENTKIT_LOG_JSON": "true",
        "EVENTKIT_LOG_LEVEL": "INFO",
        **{
            f"SERVICE_URL_{c.upper().replace('-', '_')}": f"http://{c}-api:{API_PORT}"
            for c in s.calls
        },
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
            "to": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "strimzi.io/cluster": KAFKA_CLUSTER,
                            "strimzi.io/kind": "Kafka",
                        }
                    }
                }
            ],
            "ports": tcp(9092),
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
            "metadata": meta(f"{s.name}-egress", s.name, "network"),
            "spec": {"podSelector": name_sel, "policyTypes": ["Egress"], "egress": egress},
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
                    {"from": [zikao_pods], "ports": tcp(9092)},
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
                    # eventkit's clients speak PLAINTEXT; the NetworkPolicies restrict who connects
                    {"name": "plain", "port": 9092, "type": "internal", "tls": False}
                ],
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
    return [kafka, pool, *topics]


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


# --- writing ---------------------------------------------------------------------------------

HEADER = "# Generated by deploy/k8s/generate.py from its tables: edit those, then run it.\n"


def dump(docs: list[dict[str, Any]]) -> str:
    body = "---\n".join(
        yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=100) for d in docs
    )
    return HEADER + body


def files() -> dict[str, str]:
    out = {
        "platform/network-policies.yaml": dump(platform_policies()),
        "platform/ingress.yaml": dump(ingresses()),
        "platform/kafka.yaml": dump(kafka_docs()),
        "platform/postgres.yaml": dump(postgres_docs()),
    }
    for s in SERVICES:
        out[f"services/{s.name}.yaml"] = dump(service_docs(s))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/managed-by": "kustomize"}}],
        "resources": sorted(out),
    }
    out["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the base is stale")
    args = parser.parse_args(argv)
    wanted = files()
    stale = [
        rel
        for rel, text in wanted.items()
        if not (BASE / rel).is_file() or (BASE / rel).read_text() != text
    ]
    extra = (
        sorted(
            str(p.relative_to(BASE))
            for p in BASE.rglob("*.yaml")
            if str(p.relative_to(BASE)) not in wanted
        )
        if BASE.is_dir()
        else []
    )
    if args.check:
        for rel in stale:
            print(f"stale: deploy/k8s/base/{rel}", file=sys.stderr)
        for rel in extra:
            print(f"not generated: deploy/k8s/base/{rel}", file=sys.stderr)
        return 1 if stale or extra else 0
    for rel in stale:
        path = BASE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[rel])
        print(f"wrote deploy/k8s/base/{rel}")
    for rel in extra:
        (BASE / rel).unlink()
        print(f"removed deploy/k8s/base/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
