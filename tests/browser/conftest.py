"""Fixtures of the browser tests: a Slipway server with the demo deployment and data logged by the
real mlflow client, and headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Run from the repository root (scripts/test.sh does, once, on SQLite):
    scripts/ensure-chromium.sh; scripts/ensure-mlflow-ui.sh
    .venv/bin/python -m pytest tests/browser -q -p no:cacheprovider

The server is `$SLIPWAY_BIN up` (default target/debug/slipway) started by tests/interop/slipway_testlib.py
with the demo model; it finds the MLflow UI in ./.mlflow-ui (scripts/ensure-mlflow-ui.sh) or wherever
SLIPWAY_MLFLOW_UI_DIR points. Every page visit records the requests Chrome made (performance log) and
the console's messages, so a test can require "no failed request, no uncaught error".

Screenshots go to target/browser-screenshots/, or to docs/ui/ (the README's pictures) when
SLIPWAY_UPDATE_SCREENSHOTS=1.

Every secret the tests see — the admin token, tokens they create, the session id each sign-in
leaves in the browser's cookie — is remembered (`remember_secret`); when the session's server
stops, its whole log is written to target/browser-logs/server.log and must contain none of them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_INTEROP = Path(__file__).resolve().parents[1] / "interop"
if str(_INTEROP) not in sys.path:
    sys.path.insert(0, str(_INTEROP))

# Before mlflow is imported anywhere: no telemetry, bounded retries (as the interop suite).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from slipway_testlib import REPO_ROOT, new_admin_token, start_server  # noqa: E402

SCREENSHOTS = (
    REPO_ROOT / "docs" / "ui"
    if os.environ.get("SLIPWAY_UPDATE_SCREENSHOTS", "") not in ("", "0", "false", "no")
    else REPO_ROOT / "target" / "browser-screenshots"
)
LOGS = REPO_ROOT / "target" / "browser-logs"

# What Chromium needs in this sandbox: headless, no sandbox, and none of the background
# connections (QUIC, component updates, sync) that the network here refuses.
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
]


# Secrets that must never reach the server's log: tokens and session ids (see the module doc).
SECRETS: set[str] = set()
SESSION_COOKIE = "slipway_session"


def remember_secret(value: str | None) -> None:
    """Adds a token or session id to the secrets the session server's log must not contain."""
    if value:
        SECRETS.add(value)


def secrets_in(text: str, secrets) -> list[str]:
    """The secrets that occur in ``text``, shortened so that a failure message does not leak them."""
    return [f"{v[:6]}… ({len(v)} characters)" for v in sorted(secrets) if v in text]


@dataclass
class Request:
    """One request Chrome made, with its outcome."""

    url: str
    method: str
    status: int | None = None  # None: no response (see failed)
    failed: str | None = None  # net error text, when the request never got a response
    canceled: bool = False


@dataclass
class PageLog:
    """What one page visit did on the wire and in the console."""

    requests: list[Request] = field(default_factory=list)
    console: list[dict] = field(default_factory=list)

    def failures(self, base_url: str) -> list[str]:
        """Requests to the server that failed (4xx/5xx or no answer), as text."""
        out = []
        for r in self.requests:
            if not r.url.startswith(base_url):
                continue
            if r.status is not None and r.status >= 400:
                out.append(f"{r.method} {r.url} -> HTTP {r.status}")
            elif r.failed and not r.canceled:
                out.append(f"{r.method} {r.url} -> {r.failed}")
        return out

    def js_errors(self) -> list[str]:
        """Uncaught JavaScript errors (console messages of level SEVERE that are exceptions)."""
        return [
            m["message"]
            for m in self.console
            if m.get("level") == "SEVERE" and ("Uncaught" in m["message"] or "Error:" in m["message"])
            and "Failed to load resource" not in m["message"]
        ]


class Browser:
    """A headless Chromium session with helpers to visit pages and read back what happened."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self._profile = tempfile.TemporaryDirectory(prefix="slipway-chrome-")
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile.name}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        service = webdriver.ChromeService(
            executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"),
            log_output=str(LOGS / "chromedriver.log"),
        )
        LOGS.mkdir(parents=True, exist_ok=True)
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(60)
        self.all_requests: list[Request] = []

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self._profile.cleanup()

    # -- logs ---------------------------------------------------------------------------------
    def drain(self) -> PageLog:
        """The requests and console messages since the last drain."""
        by_id: dict[str, Request] = {}
        order: list[str] = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            method, params = msg.get("method"), msg.get("params", {})
            rid = params.get("requestId")
            if method == "Network.requestWillBeSent":
                req = params["request"]
                if rid not in by_id:
                    order.append(rid)
                by_id[rid] = Request(url=req["url"], method=req["method"])
            elif method == "Network.responseReceived" and rid in by_id:
                by_id[rid].status = params["response"]["status"]
            elif method == "Network.loadingFailed" and rid in by_id:
                by_id[rid].failed = params.get("errorText")
                by_id[rid].canceled = bool(params.get("canceled"))
        log = PageLog(requests=[by_id[i] for i in order], console=self.driver.get_log("browser"))
        self.all_requests.extend(log.requests)
        return log

    # -- navigation ---------------------------------------------------------------------------
    def get(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def wait_for_text(self, *texts: str, timeout: float = 45) -> str:
        """Waits until the page's visible text contains every one of ``texts``; returns the text."""
        body = {"text": ""}

        def present(d):
            try:
                body["text"] = d.find_element(By.TAG_NAME, "body").text
            except Exception:  # page in flux
                return False
            return all(t in body["text"] for t in texts)

        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(present)
        except Exception:
            missing = [t for t in texts if t not in body["text"]]
            raise AssertionError(
                f"{self.driver.current_url}: text {missing} not shown within {timeout}s; page says:\n"
                + body["text"][:3000]
            ) from None
        return body["text"]

    def settle(self, quiet_s: float = 1.5, timeout: float = 20) -> None:
        """Waits until no request is in flight for ``quiet_s`` (the page has loaded what it loads)."""
        script = (
            "const e = performance.getEntriesByType('resource');"
            "return [e.length, document.readyState];"
        )
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            now = self.driver.execute_script(script)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.2)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def sign_in(self, token: str, next_path: str = "/") -> None:
        self.get("/login?next=" + urllib.parse.quote(next_path, safe="/"))
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.ID, "sign-in").click()
        WebDriverWait(self.driver, 20).until(lambda d: "/login" not in d.current_url)
        self.remember_session()

    def remember_session(self) -> str | None:
        """The session id in the browser's cookie, remembered as a secret; None without one."""
        cookie = self.driver.get_cookie(SESSION_COOKIE)
        value = cookie["value"] if cookie else None
        remember_secret(value)
        return value


@dataclass
class Seeded:
    """What the seed logged with the mlflow client, for the assertions."""

    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    other_run_name: str
    model_name: str
    model_id: str
    version_run_ids: dict[str, str]  # model version -> the run that logged it


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A `slipway up` with the demo deployment (iris) over SQLite and a local directory."""
    base = tmp_path_factory.mktemp("slipway-browser")
    token = new_admin_token()
    try:
        srv = start_server(base / "data", admin_token=token, demo=True, timeout=120)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    srv.token = token
    remember_secret(token)
    try:
        yield srv
    finally:
        srv.stop()
        LOGS.mkdir(parents=True, exist_ok=True)
        log = "".join(srv.stdout_lines) + "\n--- stderr ---\n" + "".join(srv.stderr_lines)
        (LOGS / "server.log").write_text(log)
    # "No token in URLs, local storage or logs": the log of every browser test, whole.
    leaked = secrets_in(log, SECRETS)
    if leaked:
        pytest.fail(f"the server log ({LOGS / 'server.log'}) contains tokens or session ids: {leaked}")


@pytest.fixture(scope="session")
def seeded(server, tmp_path_factory) -> Seeded:
    """Runs with metrics, params, tags and artifacts, a registered model with two versions and an
    alias, and a logged model — all written by the unmodified mlflow client."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from serving_models import iris_pipeline, log_and_register, tracking_at

    with tracking_at(server.url, server.token):
        client = MlflowClient()
        name = "browser-experiment"
        exp_id = client.create_experiment(name, tags={"team": "ui"})
        with mlflow.start_run(experiment_id=exp_id, run_name="alpha-run") as run:
            mlflow.log_params({"learning_rate": "0.01", "epochs": "20"})
            mlflow.set_tag("stage", "browser-test")
            for step in range(20):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
                mlflow.log_metric("accuracy", 0.5 + step * 0.02, step=step)
            notes = tmp_path_factory.mktemp("artifacts") / "notes.txt"
            notes.write_text("hello from the browser test\n")
            mlflow.log_artifact(str(notes), artifact_path="docs")
        with mlflow.start_run(experiment_id=exp_id, run_name="beta-run"):
            mlflow.log_metric("loss", 0.42)
        model_name = "browser-model"
        built = iris_pipeline()
        log_and_register(built, model_name, exp_id)
        log_and_register(built, model_name, exp_id)
        client.set_registered_model_alias(model_name, "champion", "2")
        client.update_registered_model(model_name, description="A model registered by the browser test")
        models = client.search_logged_models(experiment_ids=[exp_id])
        model_id = models[0].model_id
        version_run_ids = {v: client.get_model_version(model_name, v).run_id for v in ("1", "2")}
    return Seeded(
        experiment_id=exp_id,
        experiment_name=name,
        run_id=run.info.run_id,
        run_name="alpha-run",
        other_run_name="beta-run",
        model_name=model_name,
        model_id=model_id,
        version_run_ids=version_run_ids,
    )


@pytest.fixture(scope="session")
def browser_session(server):
    """One Chromium for the session, signed in with the admin token."""
    b = Browser(server.url)
    try:
        b.sign_in(server.token)
        b.drain()
        yield b
    finally:
        b.close()


@pytest.fixture
def browser(browser_session):
    browser_session.drain()
    return browser_session


@pytest.fixture
def fresh_browser(server):
    """A Chromium with a fresh profile: no session."""
    b = Browser(server.url)
    try:
        yield b
    finally:
        b.close()
