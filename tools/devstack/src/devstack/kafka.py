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
from collections.abc import Mapping
from pathlib import Path

from ._part import LaunchSpec, Part
from ._proc import tail
from .config import LOCALHOST, Ports, StackConfig
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


def kafka_properties(
    ports: Ports,
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
    tls: ServerCertificate | None = None,
) -> dict[str, str]:
    """The broker's settings; with ``tls``, the SASL_SSL listener on ``ports.kafka_sasl`` too."""
    listeners = [f"PLAINTEXT://{LOCALHOST}:{ports.kafka}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if tls is not None:
        listeners.append(f"SASL_SSL://{LOCALHOST}:{ports.kafka_sasl}")
        protocols.append("SASL_SSL:SASL_SSL")
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOCALHOST}:{ports.kafka_controller}",
        "listeners": ",".join([*listeners, f"CONTROLLER://{LOCALHOST}:{ports.kafka_controller}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(protocols),
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        # 3 instead of 50 partitions: the first consumer group / transaction is ready sooner
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.ms": "-1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
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
) -> str:
    lines = ["# written by devstack at every start"]
    lines += [f"{k}={v}" for k, v in kafka_properties(ports, log_dir, overrides, tls).items()]
    return "\n".join(lines) + "\n"


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
    name = "kafka"
    stop_signal = signal.SIGTERM  # controlled shutdown
    stop_grace = 60.0

    def __init__(self, config: StackConfig, ports: Ports) -> None:
        super().__init__(config, ports)
        self.root = config.run_dir / "kafka"
        self.data = self.root / "data"
        self.props_file = self.root / "server.properties"
        self.tls_dir = self.root / "tls"
        self.log4j_file = self.root / "log4j2.properties"
        self._java: Path | None = None
        self._libs: Path | None = None

    @property
    def port(self) -> int:
        return self.ports.kafka

    @property
    def classpath(self) -> str:
        assert self._libs is not None
        return f"{self._libs}/*"

    def prepare(self) -> None:
        self._java = checked_java()
        self._libs, _ = ensure_kafka_libs(
            self.config.resolved_cache_dir, self.config.resolved_kafka_pom
        )
        log.info("kafka: Apache Kafka %s from %s", kafka_version(self._libs), self._libs)
        self.data.mkdir(parents=True, exist_ok=True)
        tls = issue_server_certificate(self.tls_dir)
        self.props_file.write_text(
            render_kafka_properties(self.ports, self.data, self.config.kafka_properties, tls)
        )
        self.log4j_file.write_text(render_log4j2_properties())
        if not (self.data / "meta.properties").exists():
            template = self._format_template()
            for f in template.iterdir():
                shutil.copy2(f, self.data / f.name)
            (self.root / SCRAM_MARKER).write_text(f"{SASL_MECHANISM} {KAFKA_DEV_USERNAME}\n")
            log.info("kafka: storage %s formatted (from %s)", self.data, template)
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
        check_kafka(ep, timeout)

    # The SASL_SSL listener opens with the PLAINTEXT one; it is checked by `devstack status`
    # (check_kafka_listeners), not here: its first TLS handshake costs ~0.2s of start time.
