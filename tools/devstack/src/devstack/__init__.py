"""Local stack of real parts started as processes (no Docker): PostgreSQL, Apache Kafka (KRaft)
and SeaweedFS as the S3 endpoint.

    from devstack import Stack, StackConfig
    stack = Stack(StackConfig(run_dir=tmp_path))    # free ports by default
    endpoints = stack.start()                       # concurrent start + health checks
    endpoints.pg_dsn("identity"), endpoints.kafka_bootstrap, endpoints.s3_endpoint
    stack.stop()
"""

from .config import DEFAULT_DATABASES, SERVICE_DATABASES, Ports, StackConfig, pick_free_ports
from .endpoints import Endpoints
from .errors import DevstackError, InstallError, PartError, StackAlreadyRunning
from .stack import PartStatus, Stack, running_stack

__all__ = [
    "DEFAULT_DATABASES",
    "SERVICE_DATABASES",
    "DevstackError",
    "Endpoints",
    "InstallError",
    "PartError",
    "PartStatus",
    "Ports",
    "Stack",
    "StackAlreadyRunning",
    "StackConfig",
    "pick_free_ports",
    "running_stack",
]
