"""Browser sign-in: pages redirect to /login without a session, a read session cannot create a
token, a forged cross-site POST is refused, the session survives a restart (SQLite here; a second
replica over PostgreSQL in tests/cluster/test_sessions.py)."""

from __future__ import annotations

import http.server
import threading
import urllib.parse

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import LOGS, Browser, remember_secret, secrets_in
from slipway_testlib import auth_headers, create_token, new_admin_token, start_server, uniq


@pytest.mark.parametrize("path", ["/", "/#/experiments", "/#/models/iris", "/console/", "/console/#/tokens"])
def test_pages_without_a_session_go_to_sign_in(fresh_browser, path):
    fresh_browser.get(path)
    WebDriverWait(fresh_browser.driver, 20).until(lambda d: "/login" in d.current_url)
    url = urllib.parse.urlsplit(fresh_browser.driver.current_url)
    assert url.path == "/login", fresh_browser.driver.current_url
    assert fresh_browser.driver.find_element(By.ID, "token").is_displayed()
    if path.startswith("/console"):
        assert urllib.parse.parse_qs(url.query)["next"] == ["/console/"], url


def test_sign_in_page_and_a_wrong_token(fresh_browser, server):
    fresh_browser.get("/login")
    fresh_browser.screenshot("login")
    fresh_browser.driver.find_element(By.ID, "token").send_keys("slw_wrong")
    fresh_browser.driver.find_element(By.ID, "sign-in").click()
    fresh_browser.wait_for_text("not valid or has been revoked")
    # the token never appears in the URL, and nothing is kept in the page's storage
    assert "slw_" not in fresh_browser.driver.current_url
    fresh_browser.sign_in(server.token, "/console/")
    fresh_browser.wait_for_text("Deployments", "iris")
    assert "slw" not in fresh_browser.driver.current_url
    stored = fresh_browser.driver.execute_script(
        "return JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage))"
    )
    assert server.token not in stored
    cookies = fresh_browser.driver.get_cookies()
    session = [c for c in cookies if c["name"] == "slipway_session"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict", cookies
    assert server.token not in str(cookies)
    assert fresh_browser.driver.execute_script("return document.cookie") == "", "HttpOnly: scripts cannot read it"
    # sign out
    fresh_browser.driver.find_element(By.ID, "sign-out").click()
    WebDriverWait(fresh_browser.driver, 20).until(lambda d: "/login" in d.current_url)
    fresh_browser.get("/console/")
    WebDriverWait(fresh_browser.driver, 20).until(lambda d: "/login" in d.current_url)


def test_a_read_session_cannot_create_a_token(fresh_browser, server):
    read = create_token(server.url, server.token, ["read"], name=uniq("reader"))
    remember_secret(read)
    fresh_browser.sign_in(read, "/console/#/tokens")
    fresh_browser.wait_for_text("Token management needs an admin session")
    # the API refuses it too, from the console's own origin
    status = fresh_browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch('/api/v1/tokens', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({name: 'escalate', scopes: ['admin']})}).then(r => done(r.status));"""
    )
    assert status == 403
    names = [t["name"] for t in requests.get(server.url + "/api/v1/tokens", headers=auth_headers(server.token),
                                             timeout=10).json()["tokens"]]
    assert "escalate" not in names
    # what read allows still works in the same browser
    fresh_browser.get("/console/#/deployments")
    fresh_browser.wait_for_text("iris", "ready")


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """A page on another origin that posts a form to Slipway as soon as it loads."""

    target = ""

    def do_GET(self):  # noqa: N802
        body = f"""<!doctype html><html><body>
        <form id="f" method="post" action="{self.target}/api/v1/tokens" enctype="text/plain">
          <input name='{{"name":"forged","scopes":["admin"],"x":"' value='"}}'>
        </form><script>document.getElementById('f').submit()</script></body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("evil_host", ["127.0.0.1", "localhost"])
def test_a_forged_cross_site_post_is_refused(fresh_browser, server, evil_host):
    """From a page on another port of the same host (same site: the browser sends the cookie, the
    Origin check refuses) and from another site (SameSite=Strict: no cookie at all)."""
    fresh_browser.sign_in(server.token, "/console/")
    handler = type("Evil", (_EvilPage,), {"target": server.url})
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=evil.serve_forever, daemon=True)
    t.start()
    try:
        fresh_browser.driver.get(f"http://{evil_host}:{evil.server_address[1]}/")
        WebDriverWait(fresh_browser.driver, 20).until(lambda d: d.current_url.startswith(server.url))
        text = fresh_browser.driver.find_element(By.TAG_NAME, "body").text
    finally:
        evil.shutdown()
    if evil_host == "127.0.0.1":
        assert "Cross-site request refused" in text, text
    else:
        assert "UNAUTHENTICATED" in text or "Authentication required" in text, text
    names = [t["name"] for t in requests.get(server.url + "/api/v1/tokens", headers=auth_headers(server.token),
                                             timeout=10).json()["tokens"]]
    assert "forged" not in names


def test_the_session_survives_a_restart(tmp_path):
    token = new_admin_token()
    srv = start_server(tmp_path / "data", admin_token=token)
    b = None
    try:
        b = Browser(srv.url)
        b.sign_in(token, "/console/#/tokens")
        b.wait_for_text("All tokens")
        srv.stop()
        srv = start_server(tmp_path / "data", admin_token=token)
        # a new port after the restart: the cookie is the host's (cookies ignore ports)
        b.base_url = srv.url
        b.get("/console/#/tokens")
        b.wait_for_text("All tokens")
        assert "/login" not in b.driver.current_url
    finally:
        if b is not None:
            b.close()
        srv.stop()


def test_no_token_or_session_id_in_the_server_log(tmp_path):
    """A server logging at debug level, through sign-in (a wrong token, then a right one), pages of
    the console and the MLflow UI, API calls with the cookie and the header, a new token, sign-out
    and a request with the ended session: its whole log names no token and no session id."""
    token = new_admin_token()
    srv = start_server(tmp_path / "data", admin_token=token, env={"SLIPWAY_LOG_LEVEL": "debug,ort=warn"})
    secrets = {token}
    b = None
    try:
        b = Browser(srv.url)
        b.get("/login?next=/console/")
        b.driver.find_element(By.ID, "token").send_keys("slw_not_a_real_token_0123456789")
        b.driver.find_element(By.ID, "sign-in").click()
        b.wait_for_text("not valid or has been revoked")
        b.sign_in(token, "/console/#/tokens")
        b.wait_for_text("All tokens")
        session = b.remember_session()
        assert session, "signing in set the session cookie"
        secrets.add(session)
        b.driver.find_element(By.ID, "token-name").send_keys("log-check")
        b.driver.find_element(By.CSS_SELECTOR, "#create-token button[type=submit]").click()
        b.wait_for_text("Copy it now")
        created = b.driver.find_element(By.ID, "new-token").text
        assert created.startswith("slw_"), created
        secrets.add(created)
        b.get("/#/experiments")
        b.wait_for_text("Experiments")
        assert requests.get(srv.url + "/api/v1/deployments", headers=auth_headers(created), timeout=10).status_code == 200
        assert requests.get(srv.url + "/api/v1/tokens", headers=auth_headers("slw_wrong"), timeout=10).status_code == 401
        b.get("/console/")
        b.wait_for_text("Deployments")
        b.driver.find_element(By.ID, "sign-out").click()
        WebDriverWait(b.driver, 20).until(lambda d: "/login" in d.current_url)
        ended = requests.get(srv.url + "/api/v1/deployments", cookies={"slipway_session": session}, timeout=10)
        assert ended.status_code == 401, ended.text
    finally:
        if b is not None:
            b.close()
        srv.stop()
    log = "".join(srv.stdout_lines) + "".join(srv.stderr_lines)
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "server-debug.log").write_text(log)
    assert "browser signed in" in log, "the log is the server's, at debug level"
    assert "DEBUG" in log or '"level":"DEBUG"' in log, "debug lines were written"
    leaked = secrets_in(log, secrets)
    assert not leaked, f"tokens or session ids in the server log ({LOGS / 'server-debug.log'}): {leaked}"
