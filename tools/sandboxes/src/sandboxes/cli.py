"""`sandboxes chsi|neea|sms`: run one provider sandbox with uvicorn."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn

from sandboxes import chsi, neea, sms
from sandboxes.faults import DEFAULT_FAULT_TIMEOUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandboxes", description="Local provider sandboxes.")
    sub = parser.add_subparsers(dest="provider", required=True)
    for name, port, title in (
        ("chsi", 8201, "CHSI (学信网): QR authorisation and verification codes"),
        ("neea", 8202, "NEEA certificate query: CET, PETS, NCRE, NIT"),
        ("sms", 8203, "SMS gateway (短信网关): template messages, readable by tests"),
    ):
        cmd = sub.add_parser(name, help=title, description=title)
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=port)
        cmd.add_argument("--secret", default=None, help="client secret (default from env)")
        cmd.add_argument(
            "--fault-timeout",
            type=float,
            default=float(
                os.environ.get("SANDBOX_FAULT_TIMEOUT_SECONDS", str(DEFAULT_FAULT_TIMEOUT))
            ),
            help="seconds the timeout fault sleeps",
        )
        cmd.add_argument("--log-level", default="info")
        if name == "chsi":
            cmd.add_argument("--public-url", default=None, help="base URL put in qr_content")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `sandboxes` script."""
    args = _parser().parse_args(argv)
    if args.provider == "chsi":
        public_url = (
            args.public_url
            or os.environ.get("SANDBOX_CHSI_PUBLIC_URL")
            or f"http://{args.host}:{args.port}"
        )
        app = chsi.create_app(
            secret=args.secret or os.environ.get("SANDBOX_CHSI_SECRET", "chsi-sandbox-secret"),
            public_url=public_url,
            fault_timeout=args.fault_timeout,
        )
    elif args.provider == "sms":
        app = sms.create_app(
            secret=args.secret or os.environ.get("SANDBOX_SMS_SECRET", sms.DEFAULT_SECRET),
            fault_timeout=args.fault_timeout,
        )
    else:
        app = neea.create_app(
            secret=args.secret or os.environ.get("SANDBOX_NEEA_SECRET", "neea-sandbox-secret"),
            fault_timeout=args.fault_timeout,
        )
    # access_log off: request lines carry ticket paths only, but keep the sandbox log quiet.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
