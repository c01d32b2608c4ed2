"""Unit tests: port picking, config rendering, endpoints/env round trips, process helpers."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import time
from dataclasses import fields
from pathlib import Path

import pytest

from devstack import DEFAULT_DATABASES, Endpoints, Ports, Stack, StackConfig, pick_free_ports
from devstack._part import socket_dir
from devstack._proc import ProcRef, descendants, is_alive, spawn, tail, terminate
from devstack.config import port_is_free
from devstack.install import kafka_libs_dir
from devstack.kafka import (
    KAFKA_DEV_PASSWORD,
    KAFKA_DEV_USERNAME,
    generate_cluster_id,
    kafka_properties,
    render_kafka_properties,
    scram_add_argument,
)
from devstack.postgres import ensure_traversable, render_postgres_conf
from devstack.seaweed import render_s3_config, render_weed_args
from devstack.stack import endpoints_for
from devstack.tls import issue_server_certificate

pytestmark = pytest.mark.unit


def _ports() -> Ports:
    return Ports(*range(41000, 41000 + len(fields(Ports))))


# --- ports ---------------------------------------------------------------------------------------


def test_pick_free_ports_distinct_and_bindable() -> None:
    ports = pick_free_ports(20)
    assert len(ports) == 20
    assert len(set(ports)) == 20
    for p in ports:
        assert 1024 < p < 65536
        assert port_is_free(p)


def test_port_is_free_false_while_listening() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
        assert Ports(*([port] * len(fields(Ports)))).busy()


def test_ports_free_fixed_and_round_trip() -> None:
    free = Ports.free()
    assert len(set(free.as_dict().values())) == len(free.as_dict())
    fixed = Ports.fixed()
    assert (fixed.pg, fixed.kafka, fixed.s3) == (55432, 59092, 58333)
    assert len(set(fixed.as_dict().values())) == len(fixed.as_dict())
    assert Ports.from_dict(json.loads(json.dumps(free.as_dict()))) == free
    # a stack.json written before the SASL_SSL listener still attaches
    older = {k: v for k, v in free.as_dict().items() if k != "kafka_sasl"}
    assert Ports.from_dict(older).kafka_sasl == 0


# --- config --------------------------------------------------------------------------------------


def test_stack_config_defaults_and_validation(tmp_path: Path) -> None:
    cfg = StackConfig(run_dir=tmp_path / "run")
    assert cfg.databases == DEFAULT_DATABASES
    assert "eventkit_test" in cfg.databases
    assert cfg.run_dir.is_absolute()
    assert cfg.state_file == cfg.run_dir / "stack.json"
    assert cfg.env_file == cfg.run_dir / "stack.env"
    assert cfg.logs_dir == cfg.run_dir / "logs"
    assert StackConfig(run_dir=tmp_path, ports="fixed").resolve_ports() == Ports.fixed()
    assert StackConfig(run_dir=tmp_path, ports=_ports()).resolve_ports() == _ports()
    assert StackConfig(run_dir=tmp_path, databases=["a", "b", "a"]).databases == ("a", "b")
    with pytest.raises(ValueError, match="invalid database name"):
        StackConfig(run_dir=tmp_path, databases=['x"; DROP'])
    with pytest.raises(ValueError, match="ports must be"):
        StackConfig(run_dir=tmp_path, ports="random")  # type: ignore[arg-type]


def test_kafka_pom_and_cache_defaults(tmp_path: Path) -> None:
    cfg = StackConfig(run_dir=tmp_path)
    assert cfg.resolved_kafka_pom.name == "pom.xml"
    assert cfg.resolved_kafka_pom.is_file()
    assert cfg.resolved_cache_dir.name in (".cache", "devstack")


def test_kafka_libs_dir_keyed_by_pom_content(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project>1</project>")
    first = kafka_libs_dir(tmp_path / "cache", pom)
    assert first == kafka_libs_dir(tmp_path / "cache", pom)
    pom.write_text("<project>2</project>")
    assert kafka_libs_dir(tmp_path / "cache", pom) != first
    assert first.parent == tmp_path / "cache" / "kafka-libs"


# --- rendering -----------------------------------------------------------------------------------


def _parse_pg_conf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.partition(" = ")
        assert value.startswith("'")
        assert value.endswith("'")
        out[key] = value[1:-1].replace("''", "'")
    return out


def test_render_postgres_conf(tmp_path: Path) -> None:
    conf = _parse_pg_conf(render_postgres_conf(55432, tmp_path / "sock"))
    assert conf["listen_addresses"] == "127.0.0.1"
    assert conf["port"] == "55432"
    assert conf["unix_socket_directories"] == str(tmp_path / "sock")
    assert conf["max_connections"] == "300"
    assert conf["fsync"] == "on"
    assert conf["synchronous_commit"] == "on"
    custom = _parse_pg_conf(
        render_postgres_conf(1, tmp_path, {"max_connections": "50", "application_name": "it's"})
    )
    assert custom["max_connections"] == "50"
    assert custom["application_name"] == "it's"


def test_render_kafka_properties(tmp_path: Path) -> None:
    ports = _ports()
    text = render_kafka_properties(ports, tmp_path / "data")
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props == kafka_properties(ports, tmp_path / "data")
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{ports.kafka_controller}"
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{ports.kafka},CONTROLLER://127.0.0.1:{ports.kafka_controller}"
    )
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{ports.kafka}"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key, value in {
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.partitions": "3",
        "log.retention.ms": "-1",
    }.items():
        assert props[key] == value, key
    overridden = kafka_properties(ports, tmp_path, {"num.partitions": "1", "x.y": "z"})
    assert overridden["num.partitions"] == "1"
    assert overridden["x.y"] == "z"
    assert not any("sasl" in key or "ssl" in key for key in props)


def test_render_kafka_properties_with_the_sasl_ssl_listener(tmp_path: Path) -> None:
    ports = _ports()
    tls = issue_server_certificate(tmp_path / "tls")
    text = render_kafka_properties(ports, tmp_path / "data", tls=tls)
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props == kafka_properties(ports, tmp_path / "data", tls=tls)
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{ports.kafka},SASL_SSL://127.0.0.1:{ports.kafka_sasl},"
        f"CONTROLLER://127.0.0.1:{ports.kafka_controller}"
    )
    assert props["advertised.listeners"] == (
        f"PLAINTEXT://127.0.0.1:{ports.kafka},SASL_SSL://127.0.0.1:{ports.kafka_sasl}"
    )
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    )
    # inter-broker and controller traffic stay PLAINTEXT
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "sasl.mechanism.controller.protocol" not in props
    on = "listener.name.sasl_ssl."
    assert props[f"{on}sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props[f"{on}scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert props[f"{on}ssl.keystore.type"] == "PEM"
    assert props[f"{on}ssl.keystore.location"] == str(tls.keystore_file)
    assert not [k for k in props if "password" in k]  # the PEM key is read without one
    assert scram_add_argument() == (
        f"SCRAM-SHA-512=[name={KAFKA_DEV_USERNAME},password={KAFKA_DEV_PASSWORD}]"
    )
    # authorization as Strimzi's `simple`: the plaintext clients and devstack are super users
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == f"User:ANONYMOUS;User:{KAFKA_DEV_USERNAME}"
    assert "authorizer.class.name" not in kafka_properties(ports, tmp_path / "data")


def test_endpoints_name_the_secured_listener(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path)
    ports = _ports()
    ep = endpoints_for(config, ports)
    assert ep.kafka_sasl_bootstrap == f"127.0.0.1:{ports.kafka_sasl}"
    assert ep.kafka_ca_file == str(tmp_path / "kafka" / "tls" / "ca.pem")
    assert (ep.kafka_username, ep.kafka_password) == (KAFKA_DEV_USERNAME, KAFKA_DEV_PASSWORD)
    env = ep.to_env()
    assert env["DEVSTACK_KAFKA_SASL_BOOTSTRAP"] == ep.kafka_sasl_bootstrap
    assert env["DEVSTACK_KAFKA_CA_FILE"] == ep.kafka_ca_file
    assert env["DEVSTACK_KAFKA_USERNAME"] == KAFKA_DEV_USERNAME
    assert env["DEVSTACK_KAFKA_PASSWORD"] == KAFKA_DEV_PASSWORD
    assert Endpoints.from_env(env) == ep


def test_generate_cluster_id() -> None:
    ids = {generate_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_render_seaweed(tmp_path: Path) -> None:
    cfg = json.loads(render_s3_config("AK", "SK"))
    (identity,) = cfg["identities"]
    assert identity["credentials"] == [{"accessKey": "AK", "secretKey": "SK"}]
    assert "Admin" in identity["actions"]
    ports = _ports()
    args = render_weed_args(
        Path("/bin/weed"), ports, tmp_path / "d", tmp_path / "s3.json", tmp_path
    )
    assert args[:2] == ["/bin/weed", "server"]
    flags = dict(a.lstrip("-").split("=", 1) for a in args[2:] if "=" in a)
    assert flags["s3.port"] == str(ports.s3)
    assert flags["s3.port.grpc"] == str(ports.s3_grpc)
    assert flags["master.port"] == str(ports.seaweed_master)
    assert flags["master.port.grpc"] == str(ports.seaweed_master_grpc)
    assert flags["volume.port.grpc"] == str(ports.seaweed_volume_grpc)
    assert flags["filer.port.grpc"] == str(ports.seaweed_filer_grpc)
    assert flags["ip.bind"] == "127.0.0.1"
    assert flags["s3.port.iceberg"] == "0"
    assert flags["s3.config"] == str(tmp_path / "s3.json")
    assert int(flags["master.volumeSizeLimitMB"]) <= 256
    assert "-s3" in args


def test_socket_dir_falls_back_for_long_paths(tmp_path: Path) -> None:
    assert socket_dir(tmp_path / "sock", ".s.PGSQL.5432") == tmp_path / "sock"
    deep = tmp_path / ("x" * 120) / "sock"
    short = socket_dir(deep, ".s.PGSQL.5432")
    assert short != deep
    assert len(str(short / ".s.PGSQL.5432")) <= 100
    assert socket_dir(deep, ".s.PGSQL.5432") == short  # stable per run dir


def test_ensure_traversable_adds_only_search_bit(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    target = locked / "inner" / "pg"
    target.mkdir(parents=True)
    os.chmod(locked, 0o700)
    changed = ensure_traversable(target, uid=65534, gid=65534)
    assert locked in changed
    mode = stat.S_IMODE(locked.stat().st_mode)
    assert mode & stat.S_IXOTH
    assert not mode & stat.S_IROTH
    assert ensure_traversable(target, uid=65534, gid=65534) == []


# --- endpoints -----------------------------------------------------------------------------------


def _endpoints() -> Endpoints:
    return Endpoints(
        pg_host="127.0.0.1",
        pg_port=5555,
        pg_user="dev user",
        pg_password="p@ss:w/rd",
        kafka_bootstrap="127.0.0.1:9092",
        s3_endpoint="http://127.0.0.1:8333",
        s3_access_key="ak",
        s3_secret_key="s'k $HOME",
        s3_region="us-east-1",
        databases=("identity", "media"),
        kafka_sasl_bootstrap="127.0.0.1:9094",
        kafka_ca_file="/run/kafka/tls/ca.pem",
        kafka_username="dev",
        kafka_password="pw $HOME 'x'",
    )


def test_pg_dsn_quotes_credentials() -> None:
    ep = _endpoints()
    assert (
        ep.pg_dsn("identity") == "postgresql://dev%20user:p%40ss%3Aw%2Frd@127.0.0.1:5555/identity"
    )
    assert ep.pg_dsn().endswith("/postgres")


def test_env_round_trip_through_shell(tmp_path: Path) -> None:
    ep = _endpoints()
    assert Endpoints.from_env(ep.to_env()) == ep
    env_file = tmp_path / "stack.env"
    env_file.write_text(ep.env_file_text())
    out = subprocess.run(
        ["bash", "-c", f"source {env_file} && env -0"],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    assert Endpoints.from_env(env) == ep
    for key in (
        "DEVSTACK_PG_HOST",
        "DEVSTACK_PG_PORT",
        "DEVSTACK_PG_USER",
        "DEVSTACK_PG_PASSWORD",
        "DEVSTACK_KAFKA_BOOTSTRAP",
        "DEVSTACK_S3_ENDPOINT",
        "DEVSTACK_S3_ACCESS_KEY",
        "DEVSTACK_S3_SECRET_KEY",
        "DEVSTACK_KAFKA_SASL_BOOTSTRAP",
        "DEVSTACK_KAFKA_CA_FILE",
        "DEVSTACK_KAFKA_USERNAME",
        "DEVSTACK_KAFKA_PASSWORD",
    ):
        assert key in env


def test_from_env_reports_missing() -> None:
    with pytest.raises(KeyError, match="DEVSTACK_KAFKA_BOOTSTRAP"):
        Endpoints.from_env({k: v for k, v in _endpoints().to_env().items() if "KAFKA" not in k})


def test_endpoints_dict_round_trip_and_load(tmp_path: Path) -> None:
    ep = _endpoints()
    assert Endpoints.from_dict(json.loads(json.dumps(ep.to_dict()))) == ep
    with pytest.raises(FileNotFoundError):
        Endpoints.load(tmp_path)
    (tmp_path / "stack.json").write_text(json.dumps({"endpoints": ep.to_dict()}))
    assert Endpoints.load(tmp_path) == ep


def test_attach_without_state_is_empty(tmp_path: Path) -> None:
    stack = Stack.attach(tmp_path)
    assert stack.running == {}
    assert stack.maybe_endpoints is None
    assert stack.stop() == {}


# --- processes -----------------------------------------------------------------------------------


def test_spawn_and_terminate_process_tree(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "p.log"
    popen = spawn(
        ["sh", "-c", "echo hello; sleep 60 & sleep 60 & wait"], log_path=log, cwd=tmp_path
    )
    ref = ProcRef.of(popen.pid)
    assert ref.alive()
    deadline = time.monotonic() + 5
    while len(descendants(ref.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = descendants(ref.pid)
    assert len(children) == 2
    assert os.getpgid(popen.pid) == popen.pid  # own session / process group
    assert terminate(ref, sig=signal.SIGTERM, grace=5, popen=popen)
    assert not ref.alive()
    deadline = time.monotonic() + 5
    while any(c.alive() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(c.alive() for c in children)
    assert "hello" in tail(log)


def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    popen = spawn(
        ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
        log_path=tmp_path / "p.log",
        cwd=tmp_path,
    )
    ref = ProcRef.of(popen.pid)
    time.sleep(0.2)
    assert terminate(ref, sig=signal.SIGTERM, grace=0.5, popen=popen) is False
    assert not ref.alive()


def test_procref_guards_against_pid_reuse() -> None:
    me = ProcRef.of(os.getpid())
    assert me.alive()
    assert me.start_time is not None
    assert not ProcRef(os.getpid(), me.start_time + 1).alive()
    assert not is_alive(2**22 + 12345)


def test_tail_missing_and_last_lines(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == ""
    f = tmp_path / "x.log"
    f.write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail(f, 3).splitlines() == ["line 97", "line 98", "line 99"]


@pytest.mark.unit
def test_a_signal_during_the_wait_stops_it_without_deadlocking() -> None:
    import threading

    from devstack.cli import _stop_signals

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = _stop_signals()
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        assert stop.wait(10.0) is True  # the old threading.Event deadlocked here
        assert time.monotonic() - started < 2.0
        assert stop.wait(0.0) is True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the Kafka cluster and its FAULT listeners -------------------------------------------------


def test_cluster_properties_and_endpoints(tmp_path: Path) -> None:
    from devstack.config import KafkaNodePorts
    from devstack.kafka import rewrite_meta_properties

    config = StackConfig(run_dir=tmp_path, kafka_brokers=3, kafka_fault_listeners=True)
    assert config.part_names == ("postgres", "kafka-0", "kafka-1", "kafka-2", "s3")
    ports = _ports()
    nodes = config.resolve_kafka_nodes(ports)
    assert (nodes[0].client, nodes[0].controller) == (ports.kafka, ports.kafka_controller)
    every = [p for n in nodes for p in (n.client, n.controller, n.fault, n.fault_advertised)]
    assert len(set(every)) == 12
    assert not set(every[2:]) & (
        set(ports.as_dict().values()) - {ports.kafka, ports.kafka_controller}
    )
    props = kafka_properties(ports, tmp_path, nodes=nodes, node=2)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == ",".join(
        f"{i}@127.0.0.1:{n.controller}" for i, n in enumerate(nodes)
    )
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{nodes[2].client},FAULT://127.0.0.1:{nodes[2].fault},"
        f"CONTROLLER://127.0.0.1:{nodes[2].controller}"
    )
    assert props["advertised.listeners"] == (
        f"PLAINTEXT://127.0.0.1:{nodes[2].client},FAULT://127.0.0.1:{nodes[2].fault_advertised}"
    )
    for key, value in {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "unclean.leader.election.enable": "false",
    }.items():
        assert props[key] == value, key
    ep = endpoints_for(config, ports, nodes)
    assert ep.kafka_brokers == [f"127.0.0.1:{n.client}" for n in nodes]
    assert ep.kafka_proxied_bootstrap == ",".join(f"127.0.0.1:{n.fault_advertised}" for n in nodes)
    assert ep.kafka_fault_listeners == ",".join(f"127.0.0.1:{n.fault}" for n in nodes)
    assert ep.kafka_sasl_bootstrap == ""
    assert Endpoints.from_env(ep.to_env()) == ep
    fixed = StackConfig(run_dir=tmp_path, ports="fixed", kafka_brokers=3).resolve_kafka_nodes(
        Ports.fixed()
    )
    assert fixed[1] == KafkaNodePorts(59192, 59193)
    meta = "#\nnode.id=1\ndirectory.id=abc\nversion=1\ncluster.id=XYZ\n"
    assert rewrite_meta_properties(meta, 2, "def") == (
        "#\nnode.id=2\ndirectory.id=def\nversion=1\ncluster.id=XYZ\n"
    )


def test_single_node_default_unchanged(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path)
    assert config.part_names == ("postgres", "kafka", "s3")
    ports = _ports()
    (node,) = config.resolve_kafka_nodes(ports)
    assert (node.client, node.controller, node.fault) == (ports.kafka, ports.kafka_controller, 0)
    assert kafka_properties(ports, tmp_path, nodes=(node,)) == kafka_properties(ports, tmp_path)
    ep = endpoints_for(config, ports)
    assert ep.kafka_bootstrap == f"127.0.0.1:{ports.kafka}"
    assert (ep.kafka_proxied_bootstrap, ep.kafka_fault_listeners) == ("", "")


def test_config_round_trip(tmp_path: Path) -> None:
    config = StackConfig(
        run_dir=tmp_path,
        kafka_brokers=3,
        kafka_fault_listeners=True,
        pg_settings={"work_mem": "8MB"},
        cache_dir=tmp_path / "c",
    )
    again = StackConfig.from_dict(tmp_path, json.loads(json.dumps(config.to_dict())), "free")
    assert again == config
