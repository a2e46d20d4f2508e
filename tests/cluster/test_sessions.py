"""Browser sessions are server-side state in the metadata store: a session opened on one replica
works on another over the same PostgreSQL database, survives a restart, and ends everywhere on
sign-out or when its token is revoked (within token_cache_seconds)."""

from __future__ import annotations

import time

import requests

from harness import api

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _sign_in(url: str, token: str) -> str:
    r = requests.post(url + "/login", data={"token": token, "next": "/console/"},
                      headers={"Origin": url}, allow_redirects=False, timeout=30)
    assert r.status_code == 303, f"sign-in on {url}: HTTP {r.status_code} {r.text[:300]}"
    assert r.headers["Location"] == "/console/"
    cookie = r.headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith("slipway_session=") and token not in cookie
    return cookie


def _get(url: str, path: str, cookie: str) -> int:
    return requests.get(url + path, headers={"Cookie": cookie, "Accept": "application/json"}, timeout=30).status_code


def _until(pred, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.2)


def test_a_session_works_on_every_replica_and_survives_restarts(make_cluster):
    c = make_cluster("sessions", roles=["all", "all"], demo=False)
    a, b = c.member("all-0"), c.member("all-1")
    cookie = _sign_in(a.url, c.admin_token)
    # the other replica accepts it: the session is in the shared database
    assert _get(b.url, "/api/v1/tokens", cookie) == 200
    # and writes through it from its own origin
    r = requests.post(b.url + "/api/v1/tokens", json={"name": "made-on-b", "scopes": ["read"]},
                      headers={"Cookie": cookie, "Origin": b.url}, timeout=30)
    assert r.status_code == 200, r.text
    read_token = r.json()["token"]
    # but not from a page of replica a's origin (another port is another origin)
    r = requests.post(b.url + "/api/v1/tokens", json={"name": "x", "scopes": ["read"]},
                      headers={"Cookie": cookie, "Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403

    # restarts keep it
    a.restart()
    assert _get(a.url, "/api/v1/tokens", cookie) == 200
    b.restart()
    assert _get(b.url, "/api/v1/tokens", cookie) == 200

    # a read session opened on b: read works on a, admin does not
    reader = _sign_in(b.url, read_token)
    assert _get(a.url, "/api/v1/deployments", reader) == 200
    assert _get(a.url, "/api/v1/tokens", reader) == 403

    # revoking its token on a ends it on b too (after at most token_cache_seconds)
    tokens = api(a, "GET", "/api/v1/tokens", c.admin_token).json()["tokens"]
    made = next(t for t in tokens if t["name"] == "made-on-b")
    assert api(a, "DELETE", f"/api/v1/tokens/{made['id']}", c.admin_token).status_code == 200
    _until(lambda: _get(b.url, "/api/v1/deployments", reader) == 401, "revoked token's session refused on b")

    # signing out on b ends the admin session on a as well
    r = requests.post(b.url + "/logout", headers={"Cookie": cookie, "Origin": b.url}, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert _get(b.url, "/api/v1/tokens", cookie) == 401
    _until(lambda: _get(a.url, "/api/v1/tokens", cookie) == 401, "signed-out session refused on a")
