"""S3: SeaweedFS ``weed server`` (master + volume + filer + S3 gateway in one process).

Every port is set explicitly (including the gRPC ports, which otherwise default to port+10000,
and the Iceberg/Lance side servers, which are switched off). ``master.toml`` in the working
directory makes each bucket (= collection) grow 1 volume instead of 7.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from ._part import LaunchSpec, Part, socket_dir
from .config import LOCALHOST, Ports, StackConfig
from .endpoints import Endpoints
from .health import check_s3, s3_write_probe
from .install import find_weed

log = logging.getLogger("devstack")

VOLUME_SIZE_LIMIT_MB = 64
VOLUME_MAX = 200  # volumes are not preallocated; this only caps how many may exist

MASTER_TOML = """\
# written by devstack: one volume per bucket/collection instead of 7
[master.volume_growth]
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
"""


def render_s3_config(access_key: str, secret_key: str) -> str:
    """The ``-s3.config`` identities file: one key pair with every permission."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": "devstack",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        },
        indent=2,
    )


def render_weed_args(
    weed: Path, ports: Ports, data_dir: Path, s3_config: Path, sock_dir: Path
) -> list[str]:
    return [
        str(weed),
        "server",
        f"-ip={LOCALHOST}",
        f"-ip.bind={LOCALHOST}",
        f"-dir={data_dir}",
        f"-master.port={ports.seaweed_master}",
        f"-master.port.grpc={ports.seaweed_master_grpc}",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        "-master.telemetry=false",
        "-master.peers=none",  # single-master mode: no ~1s wait for a raft quorum
        f"-volume.port={ports.seaweed_volume}",
        f"-volume.port.grpc={ports.seaweed_volume_grpc}",
        f"-volume.max={VOLUME_MAX}",
        "-volume.preStopSeconds=0",
        f"-filer.port={ports.seaweed_filer}",
        f"-filer.port.grpc={ports.seaweed_filer_grpc}",
        f"-filer.localSocket={sock_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        f"-s3.localSocket={sock_dir / 's3.sock'}",
    ]


class SeaweedPart(Part):
    name = "s3"
    stop_signal = signal.SIGTERM
    # weed's filer waits 15s for its own gRPC streams on SIGTERM; a SIGKILL after a short grace
    # loses nothing (writes are in the page cache / leveldb journal already).
    stop_grace = 2.0
    kill_is_normal = True

    def __init__(self, config: StackConfig, ports: Ports) -> None:
        super().__init__(config, ports)
        self.root = config.run_dir / "s3"
        self.data = self.root / "data"
        self.s3_config = self.root / "s3.json"
        self.sock_dir = socket_dir(self.root, "filer.sock")
        self._weed: Path | None = None

    @property
    def port(self) -> int:
        return self.ports.s3

    def prepare(self) -> None:
        self._weed = find_weed()
        self.data.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        self.s3_config.write_text(
            render_s3_config(self.config.s3_access_key, self.config.s3_secret_key)
        )
        os.chmod(self.s3_config, 0o600)
        (self.root / "master.toml").write_text(MASTER_TOML)

    def launch_spec(self) -> LaunchSpec:
        assert self._weed is not None
        argv = render_weed_args(self._weed, self.ports, self.data, self.s3_config, self.sock_dir)
        return LaunchSpec(argv=argv, cwd=self.root, env=dict(os.environ))

    def cleanup_paths(self) -> list[Path]:
        """Unix sockets weed leaves behind when killed (the gRPC ones are hard-coded to /tmp)."""
        p = self.ports
        grpc = [
            ("master", p.seaweed_master_grpc),
            ("volume", p.seaweed_volume_grpc),
            ("filer", p.seaweed_filer_grpc),
            ("s3", p.s3_grpc),
        ]
        return [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in grpc] + [  # noqa: S108
            self.sock_dir / "filer.sock",
            self.sock_dir / "s3.sock",
        ]

    def probe(self, ep: Endpoints, timeout: float) -> None:
        check_s3(ep, timeout)

    def after_healthy(self, ep: Endpoints, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                s3_write_probe(ep, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
                return
            except Exception as e:
                last = e
                time.sleep(0.2)
        raise TimeoutError(f"S3 write probe kept failing: {last}")
