"""Toxiproxy (Shopify, pinned ``TOXIPROXY_VERSION``) for network faults: a TCP proxy per
upstream, with "toxics" (latency, bandwidth, reset_peer, timeout, limit_data, slicer) and
enable/disable (a partition: the listener closes, connections are cut, new ones refused).

    tp = Toxiproxy.start(stack.config.logs_dir, stack=stack)   # own process, free API port
    proxied = proxy_stack(stack.endpoints, tp)                 # proxies postgres, s3, kafka-<i>
    tp.add_toxic("postgres", "latency", {"latency": 200})
    with tp.disabled("kafka-1"): ...
    tp.reset()                                                 # all enabled, no toxics
    tp.stop()

The server is built by ``devstack install`` (``install.ensure_toxiproxy``; ``start`` builds it
when it is missing). The client speaks its HTTP API with the standard library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._proc import ProcRef, proc_start_time, spawn, tail, terminate
from .config import LOCALHOST, default_cache_dir, pick_free_ports
from .endpoints import Endpoints
from .errors import DevstackError
from .install import TOXIPROXY_VERSION, ensure_toxiproxy

if TYPE_CHECKING:
    from .stack import Stack

log = logging.getLogger("devstack")

ToxicType = Literal["latency", "bandwidth", "reset_peer", "timeout", "limit_data", "slicer"]
Stream = Literal["downstream", "upstream"]
ADOPTED_NAME = "toxiproxy"  # its name among a Stack's processes

__all__ = [
    "TOXIPROXY_VERSION",
    "Proxy",
    "Toxic",
    "Toxiproxy",
    "ToxiproxyError",
    "kafka_proxy_name",
    "proxy_stack",
]


class ToxiproxyError(DevstackError):
    """The API refused a request (``status``: its HTTP status; 0 when it did not answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any]

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Toxic:
        return cls(
            name=d["name"],
            type=d["type"],
            stream=d.get("stream", "downstream"),
            toxicity=float(d.get("toxicity", 1.0)),
            attributes=dict(d.get("attributes") or {}),
        )


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str  # host:port the proxy accepts connections on
    upstream: str  # host:port it forwards to
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> Proxy:
        return cls(
            name=d["name"],
            listen=d["listen"],
            upstream=d["upstream"],
            enabled=bool(d["enabled"]),
            toxics=tuple(Toxic.from_api(t) for t in d.get("toxics") or ()),
        )


def _address(value: str | int) -> str:
    """``host:port``; a bare port is on 127.0.0.1."""
    return f"{LOCALHOST}:{value}" if isinstance(value, int) else value


class Toxiproxy:
    """Client of one Toxiproxy server (and, after ``start``, owner of its process)."""

    def __init__(self, api_url: str, *, timeout: float = 10.0) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.request_timeout = timeout
        self._process: tuple[ProcRef, subprocess.Popen[bytes]] | None = None
        self._stack: Stack | None = None
        self.log_path: Path | None = None

    # --- the server process --------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        log_dir: Path,
        *,
        stack: Stack | None = None,
        port: int | None = None,
        binary: Path | None = None,
        cache_dir: Path | None = None,
        timeout: float = 15.0,
    ) -> Toxiproxy:
        """Start ``toxiproxy-server`` on 127.0.0.1 (API on ``port``, default a free one), its
        log in ``<log_dir>/toxiproxy.log``, and wait until the API answers. With ``stack``, the
        process is recorded with the stack, so ``stack.stop()`` and its watchdog end it too."""
        if binary is None:
            if cache_dir is None:
                cache_dir = stack.config.resolved_cache_dir if stack else default_cache_dir()
            binary, _ = ensure_toxiproxy(cache_dir)
        api_port = port if port is not None else pick_free_ports(1)[0]
        log_path = Path(log_dir) / "toxiproxy.log"
        env = {**os.environ, "LOG_LEVEL": os.environ.get("TOXIPROXY_LOG_LEVEL", "info")}
        popen = spawn(
            [str(binary), "-host", LOCALHOST, "-port", str(api_port)],
            log_path=log_path,
            cwd=Path(log_dir),
            env=env,
        )
        tp = cls(f"http://{LOCALHOST}:{api_port}")
        tp._process = (ProcRef(popen.pid, proc_start_time(popen.pid)), popen)
        tp.log_path = log_path
        deadline = time.monotonic() + timeout
        while True:
            rc = popen.poll()
            if rc is not None:
                raise ToxiproxyError(
                    f"toxiproxy-server exited with code {rc}; last lines of {log_path}:\n"
                    f"{tail(log_path)}"
                )
            try:
                tp.version()
                break
            except ToxiproxyError:
                if time.monotonic() > deadline:
                    tp.stop()
                    raise ToxiproxyError(
                        f"toxiproxy-server did not answer within {timeout:.0f}s; "
                        f"last lines of {log_path}:\n{tail(log_path)}"
                    ) from None
                time.sleep(0.05)
        if stack is not None:
            stack.adopt(ADOPTED_NAME, popen, port=api_port, log_path=log_path)
            tp._stack = stack
        log.info("toxiproxy: pid %d, API %s", popen.pid, tp.api_url)
        return tp

    @property
    def pid(self) -> int | None:
        return self._process[0].pid if self._process else None

    def stop(self) -> None:
        """End the server this client started (every proxy goes with it)."""
        if self._process is not None:
            ref, popen = self._process
            terminate(ref, sig=signal.SIGTERM, grace=5.0, popen=popen)
            self._process = None
        if self._stack is not None:
            self._stack.forget(ADOPTED_NAME)
            self._stack = None

    def __enter__(self) -> Toxiproxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- HTTP ----------------------------------------------------------------------------------

    def _raw(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 (an http:// URL, checked in __init__)
            self.api_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout) as resp:  # noqa: S310
                raw: bytes = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace").strip()
            raise ToxiproxyError(f"{method} {path}: HTTP {e.code} {detail}", e.code) from None
        except (urllib.error.URLError, OSError) as e:
            raise ToxiproxyError(f"{method} {path}: toxiproxy not reachable ({e})") from None
        return raw

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        raw = self._raw(method, path, body)
        return json.loads(raw) if raw.strip() else None

    # --- API -----------------------------------------------------------------------------------

    def version(self) -> str:
        """The server's version (``git`` for a ``go install`` build, which stamps none)."""
        return self._raw("GET", "/version").decode().strip()

    def proxies(self) -> dict[str, Proxy]:
        data: dict[str, Any] = self._request("GET", "/proxies")
        return {name: Proxy.from_api(d) for name, d in data.items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy.from_api(self._request("GET", f"/proxies/{name}"))

    def create_proxy(
        self, name: str, upstream: str | int, listen: str | int = 0, *, enabled: bool = True
    ) -> Proxy:
        """A proxy ``listen`` -> ``upstream`` (a bare port means 127.0.0.1; listen 0: a free
        port, see ``Proxy.listen_port``)."""
        body = {
            "name": name,
            "listen": _address(listen),
            "upstream": _address(upstream),
            "enabled": enabled,
        }
        return Proxy.from_api(self._request("POST", "/proxies", body))

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        """Disabled: the listener is closed and open connections are cut (a partition that
        refuses connections; use the ``timeout`` toxic for one that hangs)."""
        return Proxy.from_api(self._request("POST", f"/proxies/{name}", {"enabled": enabled}))

    def disable(self, name: str) -> Proxy:
        return self.set_enabled(name, False)

    def enable(self, name: str) -> Proxy:
        return self.set_enabled(name, True)

    @contextlib.contextmanager
    def disabled(self, *names: str) -> Iterator[None]:
        """Partition ``names`` for the block, then enable them again."""
        for name in names:
            self.disable(name)
        try:
            yield
        finally:
            for name in names:
                self.enable(name)

    def add_toxic(
        self,
        proxy: str,
        type: ToxicType,
        attributes: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
    ) -> Toxic:
        """Add a toxic (default name ``<type>_<stream>``, as Toxiproxy names them). Attributes:
        latency {latency ms, jitter ms}; bandwidth {rate KB/s}; reset_peer {timeout ms};
        timeout {timeout ms, 0: forever}; limit_data {bytes}; slicer {average_size,
        size_variation, delay µs}. ``downstream``: data from the upstream to the client."""
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        return Toxic.from_api(self._request("POST", f"/proxies/{proxy}/toxics", body))

    def remove_toxic(self, proxy: str, toxic: str) -> None:
        self._request("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def toxics(self, proxy: str) -> list[Toxic]:
        return [Toxic.from_api(t) for t in self._request("GET", f"/proxies/{proxy}/toxics")]

    @contextlib.contextmanager
    def toxic(
        self,
        proxy: str,
        type: ToxicType,
        attributes: Mapping[str, Any] | None = None,
        *,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
    ) -> Iterator[Toxic]:
        """A toxic for the block."""
        added = self.add_toxic(proxy, type, attributes, stream=stream, toxicity=toxicity)
        try:
            yield added
        finally:
            self.remove_toxic(proxy, added.name)

    # the toxics by name

    def latency(
        self, proxy: str, ms: int, *, jitter: int = 0, stream: Stream = "downstream"
    ) -> Toxic:
        return self.add_toxic(proxy, "latency", {"latency": ms, "jitter": jitter}, stream=stream)

    def bandwidth(self, proxy: str, kb_per_s: int, *, stream: Stream = "downstream") -> Toxic:
        return self.add_toxic(proxy, "bandwidth", {"rate": kb_per_s}, stream=stream)

    def reset_peer(self, proxy: str, after_ms: int = 0, *, stream: Stream = "downstream") -> Toxic:
        return self.add_toxic(proxy, "reset_peer", {"timeout": after_ms}, stream=stream)

    def timeout(self, proxy: str, ms: int = 0, *, stream: Stream = "downstream") -> Toxic:
        """Data stops flowing; the connection is closed after ``ms`` (0: never)."""
        return self.add_toxic(proxy, "timeout", {"timeout": ms}, stream=stream)

    def limit_data(self, proxy: str, nbytes: int, *, stream: Stream = "downstream") -> Toxic:
        return self.add_toxic(proxy, "limit_data", {"bytes": nbytes}, stream=stream)

    def slicer(
        self,
        proxy: str,
        average_size: int,
        *,
        size_variation: int = 0,
        delay_us: int = 0,
        stream: Stream = "downstream",
    ) -> Toxic:
        attributes = {
            "average_size": average_size,
            "size_variation": size_variation,
            "delay": delay_us,
        }
        return self.add_toxic(proxy, "slicer", attributes, stream=stream)

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed (the proxies stay)."""
        self._request("POST", "/reset")


# --- the stack behind proxies ------------------------------------------------------------------

PG_PROXY = "postgres"
S3_PROXY = "s3"


def kafka_proxy_name(index: int) -> str:
    """``kafka-<index>``: the proxy in front of broker ``index``'s FAULT listener."""
    return f"kafka-{index}"


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def proxy_stack(ep: Endpoints, toxiproxy: Toxiproxy) -> Endpoints:
    """Create the proxies ``postgres`` and ``s3`` (free listen ports, in front of the client
    ports) and, when the stack has FAULT listeners (``StackConfig(kafka_fault_listeners=True)``),
    ``kafka-<i>`` listening on the port broker i advertises there and forwarding to its
    listener. Returns a copy of ``ep`` whose PostgreSQL, S3 and Kafka addresses go through the
    proxies (``kafka_bootstrap`` = ``ep.kafka_proxied_bootstrap``; no SASL_SSL listener).
    Proxies of the same name are replaced."""
    existing = toxiproxy.proxies()

    def create(name: str, upstream: str, listen: str | int = 0) -> Proxy:
        if name in existing:
            toxiproxy.delete_proxy(name)
        return toxiproxy.create_proxy(name, upstream, listen)

    pg = create(PG_PROXY, f"{ep.pg_host}:{ep.pg_port}")
    s3_upstream = ep.s3_endpoint.split("://", 1)[-1].rstrip("/")
    s3 = create(S3_PROXY, s3_upstream)
    changes: dict[str, Any] = {
        "pg_host": LOCALHOST,
        "pg_port": pg.listen_port,
        "s3_endpoint": f"http://{LOCALHOST}:{s3.listen_port}",
    }
    upstreams = [a for a in ep.kafka_fault_listeners.split(",") if a]
    advertised = [a for a in ep.kafka_proxied_bootstrap.split(",") if a]
    if upstreams:
        for i, (upstream, listen) in enumerate(zip(upstreams, advertised, strict=True)):
            create(kafka_proxy_name(i), upstream, _port(listen))
        changes.update(
            kafka_bootstrap=ep.kafka_proxied_bootstrap,
            kafka_sasl_bootstrap="",
            kafka_fault_listeners="",
            kafka_proxied_bootstrap="",
        )
    return dataclasses.replace(ep, **changes)
