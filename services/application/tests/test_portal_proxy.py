"""The person's address through a real reverse proxy: browsers → nginx (Debian's, started here
as the ingress controller stand-in) → the portal under uvicorn (proxy headers believed from the
proxy's address only, as the manifests configure the UIs) → identity on a socket (believing
X-Forwarded-For from the portal's address only, IDENTITY_TRUSTED_PROXIES). Login throttling
counts each person's address: typos behind one portal lock that person, not everyone."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from portal_support import PASSWORD, PortalRig, hidden, portal_rig, ticket

from application_service import bootstrap
from devstack.proxy_packages import missing_nginx_message, nginx_binary
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.throttle import ThrottlePolicy
from identity_service.testing import captcha_answer
from servicekit.testing import free_port, serve_in_process

pytestmark = pytest.mark.integration

INGRESS = "127.0.0.9"  # the proxy's own address towards the portal (the ingress controller's)
PERSON_A, PERSON_B = "127.0.0.2", "127.0.0.3"  # two browsers, on loopback addresses of their own
STRANGER = "127.0.0.4"  # someone reaching the portal or identity directly, forging the header
# Failed logins per address before it is locked: identity's rule is 30 in 15 minutes; the same
# rule with a smaller count here (each attempt solves a captcha by brute force).
CLIENT_LIMIT = 5

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_bind {ingress};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@contextmanager
def nginx(upstream: str, workdir: Path) -> Iterator[str]:
    """nginx in the foreground on a free port in front of `upstream`; its base URL."""
    binary = nginx_binary()
    if binary is None:
        pytest.fail(missing_nginx_message() or "nginx missing")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port, upstream=upstream, ingress=INGRESS))
    log = (workdir / "stderr.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:  # listening (no request: the upstream may share this thread's event loop)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: " + (workdir / "error.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def browser(base_url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address`."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30)


@pytest.fixture
async def rig(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path, identity_socket=True) as rig:
        rule = ThrottlePolicy().client
        policy = ThrottlePolicy(client=replace(rule, max_failures=CLIENT_LIMIT))
        rig.identity.accounts._throttle = LoginThrottle(rig.service.pool, policy)
        yield rig


@asynccontextmanager
async def portal_behind_nginx(rig: PortalRig, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """The portal under uvicorn believing proxy headers from the ingress only, and nginx in
    front of it: (the proxy's URL, the portal's own URL)."""
    async with serve_in_process(
        rig.app, proxy_headers=True, forwarded_allow_ips=INGRESS
    ) as portal_url:
        with nginx(portal_url, workdir) as proxy_url:
            yield proxy_url, portal_url


async def failed_login(rig: PortalRig, client: httpx.AsyncClient, identifier: str) -> int:
    form = await client.get("/login")
    assert form.status_code == 200, form.text
    fields = hidden(form.text, "/login")
    answer = await captcha_answer(rig.identity, fields["captcha_id"])
    typo = {"identifier": identifier, "password": "Wrong#2026pass", "captcha_answer": answer}
    return (await client.post("/login", data={**fields, **typo})).status_code


async def counters(rig: PortalRig) -> dict[str, int]:
    """identity's failed-login counters per client address."""
    rows = await rig.service.pool.fetch(
        "SELECT key, failures FROM identity.login_throttle WHERE key LIKE 'ip:%'"
    )
    return {str(r["key"])[3:]: int(r["failures"]) for r in rows}


async def test_each_person_behind_the_proxy_has_their_own_login_counter(
    rig: PortalRig, tmp_path: Path
) -> None:
    async with (
        portal_behind_nginx(rig, tmp_path / "nginx") as (proxy, _),
        browser(proxy, PERSON_A) as a,
        browser(proxy, PERSON_B) as b,
    ):
        # A mistypes up to the limit (other accounts each time: the address's counter, not an
        # account's, is what locks); the last typo locks A's address.
        statuses = [await failed_login(rig, a, ticket(100 + k)) for k in range(CLIENT_LIMIT)]
        assert statuses == [401] * (CLIENT_LIMIT - 1) + [429], statuses
        assert await failed_login(rig, a, ticket(0)) == 429  # A stays locked
        # B, behind the same proxy and portal, is not: a typo is just a typo.
        assert await failed_login(rig, b, ticket(0)) == 401
        assert await counters(rig) == {PERSON_A: CLIENT_LIMIT, PERSON_B: 1}


async def test_a_forged_forwarded_header_is_ignored(rig: PortalRig, tmp_path: Path) -> None:
    forged = {"X-Forwarded-For": "198.51.100.7"}
    async with portal_behind_nginx(rig, tmp_path / "nginx") as (proxy, portal):
        # Through the proxy: nginx appends the sender's address, the portal takes the last
        # address its proxy vouches for.
        async with browser(proxy, PERSON_B) as b:
            b.headers.update(forged)
            assert await failed_login(rig, b, ticket(101)) == 401
        # Straight to the portal, bypassing the proxy: the header is not believed.
        async with browser(portal, STRANGER) as direct:
            direct.headers.update(forged)
            assert await failed_login(rig, direct, ticket(102)) == 401
        # Straight to identity, not from the portal: not believed either.
        assert rig.identity_server is not None
        async with browser(rig.identity_server.url, "127.0.0.5") as raw:
            captcha = (await raw.get("/api/identity/captcha")).json()
            answer = await captcha_answer(rig.identity, captcha["captcha_id"])
            body = {"identifier": ticket(103), "password": PASSWORD,
                    "captcha_id": captcha["captcha_id"], "captcha_answer": answer}  # fmt: skip
            refused = await raw.post("/api/identity/login", json=body, headers=forged)
            assert refused.status_code == 401, refused.text
    assert await counters(rig) == {PERSON_B: 1, STRANGER: 1, "127.0.0.5": 1}
