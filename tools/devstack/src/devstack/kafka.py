"""Apache Kafka: a single KRaft node (broker + controller) on the local JDK.

The jars come from Maven Central via ``mvn`` (see ``install.ensure_kafka_libs``). The controller
quorum is static (``controller.quorum.voters``), so the storage is formatted without
``--standalone`` and the ports may change between runs of the same run dir.

``kafka-storage format`` costs a JVM start (~1-1.5s on the critical path), and its output
(``meta.properties`` + ``bootstrap.checkpoint``) does not depend on ports or paths, so it is run
once per Kafka build into ``<cache>/kafka-format/<libs key>/`` and copied into new run dirs.
Every stack formatted from the same template shares its cluster id, which is harmless as they
are independent single-node clusters.

Besides the PLAINTEXT listener everything uses, the broker has a second one, ``SASL_SSL`` with
SCRAM-SHA-512 (as Strimzi runs in production), for tests of secured clients. Its certificate is
issued at every start by a throwaway CA in ``kafka/tls/`` (see ``tls``), PEM files that Kafka
reads directly. The SCRAM user is created by ``kafka-storage format --add-scram``, so it is in
the cached template and the same in every stack: ``KAFKA_DEV_USERNAME`` /
``KAFKA_DEV_PASSWORD``, local only. Inter-broker and controller traffic stays PLAINTEXT.

The broker authorizes as Strimzi's `simple` authorization does (``StandardAuthorizer``): the
PLAINTEXT listener's anonymous clients and ``devstack`` are super users, so everything that
used the broker before is unaffected; the users of ``KAFKA_DEPLOYMENT_USERS``, named after the
deployment's KafkaUsers (deploy/k8s), can do only what ACLs grant them, which lets a test
check the manifests' ACLs against the real clients (tests/deploy).
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ._part import LaunchSpec, Part
from ._proc import tail
from .config import LOCALHOST, KafkaNodePorts, Ports, StackConfig
from .endpoints import Endpoints
from .errors import PartError
from .health import check_kafka
from .install import checked_java, ensure_kafka_libs, kafka_version
from .tls import ServerCertificate, issue_server_certificate

log = logging.getLogger("devstack")

# Always on; heap, GC and JIT flags come from StackConfig.kafka_jvm_opts.
BASE_JVM_FLAGS: tuple[str, ...] = (
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-UsePerfData",  # no /tmp/hsperfdata_<user>/<pid> files
    "-Djava.awt.headless=true",
)
# 2: the template carries the SCRAM user of the SASL_SSL listener
# 3: and the deployment's users, for the ACL check
FORMAT_TEMPLATE_VERSION = 3
SASL_MECHANISM = "SCRAM-SHA-512"
# The SCRAM user of every local broker's SASL_SSL listener: a local throwaway, never deployed.
KAFKA_DEV_USERNAME = "devstack"
KAFKA_DEV_PASSWORD = "devstack-kafka-local-only"  # noqa: S105 (local throwaway stack)
SCRAM_MARKER = "scram-user"  # in kafka/: this run dir's storage was formatted with the user
# SCRAM users without privileges, as deploy/k8s names its KafkaUsers (password: the dev one)
KAFKA_DEPLOYMENT_USERS = ("identity", "credential-verify", "media", "application", "review", "ops")
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
FAST_TOOL_FLAGS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:-UsePerfData",
)


def generate_cluster_id() -> str:
    """A Kafka cluster id: url-safe base64 of a random UUID without padding, as
    ``kafka-storage random-uuid`` makes (and like Kafka, never starting with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def kafka_ca_file(config: StackConfig) -> Path:
    """The CA certificate clients of the SASL_SSL listener trust (rewritten at every start)."""
    return config.run_dir / "kafka" / "tls" / "ca.pem"


def scram_add_argument(
    username: str = KAFKA_DEV_USERNAME, password: str = KAFKA_DEV_PASSWORD
) -> str:
    """``kafka-storage format --add-scram`` value creating the SASL_SSL listener's user."""
    return f"{SASL_MECHANISM}=[name={username},password={password}]"


def secured_listener_properties(tls: ServerCertificate) -> dict[str, str]:
    """The SASL_SSL listener's own settings: SCRAM-SHA-512 only, PEM key and chain by file."""
    prefix = "listener.name.sasl_ssl."
    return {
        f"{prefix}sasl.enabled.mechanisms": SASL_MECHANISM,
        f"{prefix}{SASL_MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        # Kafka reads an unencrypted PKCS#8 key from a PEM file without ssl.key.password.
        f"{prefix}ssl.keystore.type": "PEM",
        f"{prefix}ssl.keystore.location": str(tls.keystore_file),
        f"{prefix}ssl.client.auth": "none",
    }


# Cluster mode (StackConfig.kafka_brokers > 1): a dead broker is fenced (and leaves every ISR)
# after this many ms without a heartbeat, instead of the default 9 s.
CLUSTER_BROKER_SESSION_TIMEOUT_MS = 4000
CLUSTER_BROKER_HEARTBEAT_INTERVAL_MS = 1000


def kafka_properties(
    ports: Ports,
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
    tls: ServerCertificate | None = None,
    *,
    nodes: Sequence[KafkaNodePorts] | None = None,
    node: int = 0,
) -> dict[str, str]:
    """The settings of node ``node`` of ``nodes`` (default: the one node on ``ports.kafka``);
    with ``tls``, the SASL_SSL listener on ``ports.kafka_sasl`` too (single node only).

    One node has ``node.id`` 1, as always; in a cluster node i has ``node.id`` i, every node is
    a voter of the static controller quorum, and topics get replication 3, min.insync 2. A
    node with a ``fault`` port has a second PLAINTEXT listener ``FAULT`` there that advertises
    ``fault_advertised`` (where a TCP proxy forwards to it)."""
    if nodes is None:
        nodes = (KafkaNodePorts(ports.kafka, ports.kafka_controller),)
    cluster = len(nodes) > 1
    if cluster and tls is not None:
        raise ValueError("the SASL_SSL listener is only on the single-node broker")
    me = nodes[node]
    node_ids = list(range(len(nodes))) if cluster else [1]
    listeners = [f"PLAINTEXT://{LOCALHOST}:{me.client}"]
    advertised = list(listeners)
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if me.fault:
        listeners.append(f"FAULT://{LOCALHOST}:{me.fault}")
        advertised.append(f"FAULT://{LOCALHOST}:{me.fault_advertised}")
        protocols.append("FAULT:PLAINTEXT")
    if tls is not None:
        listeners.append(f"SASL_SSL://{LOCALHOST}:{ports.kafka_sasl}")
        advertised.append(f"SASL_SSL://{LOCALHOST}:{ports.kafka_sasl}")
        protocols.append("SASL_SSL:SASL_SSL")
    replication = str(min(3, len(nodes)))
    min_isr = str(min(2, len(nodes)))
    voters = ",".join(
        f"{i}@{LOCALHOST}:{n.controller}" for i, n in zip(node_ids, nodes, strict=True)
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_ids[node]),
        "controller.quorum.voters": voters,
        "listeners": ",".join([*listeners, f"CONTROLLER://{LOCALHOST}:{me.controller}"]),
        "advertised.listeners": ",".join(advertised),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        # 3 instead of 50 partitions: the first consumer group / transaction is ready sooner
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.ms": "-1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    if cluster:
        props["unclean.leader.election.enable"] = "false"
        props["broker.session.timeout.ms"] = str(CLUSTER_BROKER_SESSION_TIMEOUT_MS)
        props["broker.heartbeat.interval.ms"] = str(CLUSTER_BROKER_HEARTBEAT_INTERVAL_MS)
    if tls is not None:
        props.update(secured_listener_properties(tls))
        props["authorizer.class.name"] = AUTHORIZER
        props["super.users"] = f"User:ANONYMOUS;User:{KAFKA_DEV_USERNAME}"
    props.update(overrides or {})
    return props


def render_kafka_properties(
    ports: Ports,
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
    tls: ServerCertificate | None = None,
    *,
    nodes: Sequence[KafkaNodePorts] | None = None,
    node: int = 0,
) -> str:
    lines = ["# written by devstack at every start"]
    props = kafka_properties(ports, log_dir, overrides, tls, nodes=nodes, node=node)
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def rewrite_meta_properties(text: str, node_id: int, directory_id: str) -> str:
    """``meta.properties`` of the format template for another node of the same cluster: its
    ``node.id`` and a ``directory.id`` of its own (the cluster id and the bootstrap metadata
    in ``bootstrap.checkpoint`` are the same for every node, as ``kafka-storage format`` with
    the same ``-t`` would write them)."""
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "node.id":
            line = f"node.id={node_id}"
        elif key == "directory.id":
            line = f"directory.id={directory_id}"
        out.append(line)
    return "\n".join(out) + "\n"


def render_log4j2_properties() -> str:
    """log4j2 config: everything to stdout, which the stack appends to logs/kafka.log."""
    return (
        "status = warn\n"
        "name = devstack-kafka\n"
        "appender.out.type = Console\n"
        "appender.out.name = STDOUT\n"
        "appender.out.target = SYSTEM_OUT\n"
        "appender.out.layout.type = PatternLayout\n"
        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.out.ref = STDOUT\n"
        "logger.request.name = kafka.request.logger\n"
        "logger.request.level = WARN\n"
        "logger.state.name = state.change.logger\n"
        "logger.state.level = WARN\n"
        "logger.authorizer.name = kafka.authorizer.logger\n"
        "logger.authorizer.level = WARN\n"
    )


class KafkaPart(Part):
    """One Kafka node: ``kafka`` (``<run_dir>/kafka``) alone, or ``kafka-<i>``
    (``<run_dir>/kafka-<i>``) of a cluster."""

    name = "kafka"
    stop_signal = signal.SIGTERM  # controlled shutdown
    stop_grace = 60.0

    def __init__(
        self,
        config: StackConfig,
        ports: Ports,
        nodes: Sequence[KafkaNodePorts] | None = None,
        node: int = 0,
    ) -> None:
        super().__init__(config, ports)
        single = (KafkaNodePorts(ports.kafka, ports.kafka_controller),)
        self.nodes = tuple(nodes) if nodes else single
        self.node = node
        self.cluster = len(self.nodes) > 1
        if self.cluster:
            self.name = f"kafka-{node}"
        self.root = config.run_dir / self.name
        self.data = self.root / "data"
        self.props_file = self.root / "server.properties"
        self.tls_dir = self.root / "tls"
        self.log4j_file = self.root / "log4j2.properties"
        self.restarting = False  # set by Stack.start_part: keep the TLS files clients trust
        self._java: Path | None = None
        self._libs: Path | None = None

    @property
    def node_id(self) -> int:
        return self.node if self.cluster else 1

    @property
    def port(self) -> int:
        return self.nodes[self.node].client

    @property
    def classpath(self) -> str:
        assert self._libs is not None
        return f"{self._libs}/*"

    def _tls(self) -> ServerCertificate | None:
        if self.cluster:
            return None  # SASL_SSL only on the single node (see the README)
        if self.restarting:
            kept = ServerCertificate(
                ca_file=self.tls_dir / "ca.pem",
                cert_file=self.tls_dir / "server.pem",
                keystore_file=self.tls_dir / "keystore.pem",
            )
            if kept.ca_file.is_file() and kept.keystore_file.is_file():
                return kept
        return issue_server_certificate(self.tls_dir)

    def prepare(self) -> None:
        self._java = checked_java()
        self._libs, _ = ensure_kafka_libs(
            self.config.resolved_cache_dir, self.config.resolved_kafka_pom
        )
        log.info("%s: Apache Kafka %s from %s", self.name, kafka_version(self._libs), self._libs)
        self.data.mkdir(parents=True, exist_ok=True)
        self.props_file.write_text(
            render_kafka_properties(
                self.ports,
                self.data,
                self.config.kafka_properties,
                self._tls(),
                nodes=self.nodes,
                node=self.node,
            )
        )
        self.log4j_file.write_text(render_log4j2_properties())
        if not (self.data / "meta.properties").exists():
            template = self._format_template()
            for f in template.iterdir():
                shutil.copy2(f, self.data / f.name)
            if self.cluster:
                meta = self.data / "meta.properties"
                meta.write_text(
                    rewrite_meta_properties(meta.read_text(), self.node_id, generate_cluster_id())
                )
            (self.root / SCRAM_MARKER).write_text(f"{SASL_MECHANISM} {KAFKA_DEV_USERNAME}\n")
            log.info("%s: storage %s formatted (from %s)", self.name, self.data, template)
        elif not (self.root / SCRAM_MARKER).exists():
            log.warning(
                "kafka: the storage in %s predates the SASL_SSL listener and has no SCRAM user;"
                " remove %s (its topics go too) to get one",
                self.data,
                self.root,
            )

    def _format_template(self) -> Path:
        """``kafka-storage format`` output for this Kafka build, made once and cached."""
        assert self._libs is not None
        base = self.config.resolved_cache_dir / "kafka-format"
        key = f"{self._libs.name}-v{FORMAT_TEMPLATE_VERSION}"
        template = base / key / "data"
        marker = base / key / ".complete"
        if marker.exists():
            return template
        base.mkdir(parents=True, exist_ok=True)
        with (base / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.exists():
                return template
            tmp = base / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "data").mkdir(parents=True)
            props = tmp / "server.properties"
            props.write_text(render_kafka_properties(self.ports, tmp / "data"))
            self._format(props)
            (tmp / "data" / "meta.properties").read_text()  # format really wrote it
            props.unlink()
            (tmp / ".complete").write_text("kafka-storage format output\n")
            shutil.rmtree(base / key, ignore_errors=True)
            tmp.rename(base / key)
        return template

    def _format(self, props: Path) -> None:
        assert self._java is not None
        t0 = time.monotonic()
        cluster_id = generate_cluster_id()
        cmd = [
            str(self._java),
            *FAST_TOOL_FLAGS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self.classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            *(
                part
                for user in (KAFKA_DEV_USERNAME, *KAFKA_DEPLOYMENT_USERS)
                for part in ("--add-scram", scram_add_argument(user))
            ),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        with self.log_path.open("a") as f:
            f.write(f"=== devstack: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise PartError(
                self.name,
                f"kafka-storage format failed (rc={proc.returncode})",
                self.log_path,
                tail(self.log_path),
            )
        log.info(
            "kafka: kafka-storage format (cluster %s) took %.1fs", cluster_id, time.monotonic() - t0
        )

    def launch_spec(self) -> LaunchSpec:
        assert self._java is not None
        argv = [
            str(self._java),
            *self.config.kafka_jvm_opts,
            *BASE_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self.classpath,
            "kafka.Kafka",
            str(self.props_file),
        ]
        return LaunchSpec(argv=argv, cwd=self.root, env=dict(os.environ))

    def probe(self, ep: Endpoints, timeout: float) -> None:
        # this node answers, and (in a cluster) is registered and unfenced: in the metadata
        node_ep = replace(ep, kafka_bootstrap=f"{LOCALHOST}:{self.port}")
        check_kafka(node_ep, timeout, node_id=self.node_id if self.cluster else None)

    # The SASL_SSL listener opens with the PLAINTEXT one; it is checked by `devstack status`
    # (check_kafka_listeners), not here: its first TLS handshake costs ~0.2s of start time.
