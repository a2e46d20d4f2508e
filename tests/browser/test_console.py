"""The Slipway console (/console/) in the browser: the demo deployment `iris` with its state and
live figures, its page (contract, serving state, traffic chart, a rollout), token management, and
the monitoring panels (drift, prediction log, feedback) over real data, checked against the
monitoring API's own answers."""

from __future__ import annotations

import random
import re
import threading
import time

import requests
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import remember_secret
from serving_models import delete_deployment, put_deployment
from slipway_testlib import auth_headers

FLAKY_DOM = (NoSuchElementException, StaleElementReferenceException)  # the page re-renders every poll
IRIS = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _predict(server, n: int) -> None:
    with requests.Session() as s:
        s.headers.update(auth_headers(server.token))
        for _ in range(n):
            r = s.post(server.url + "/v2/models/iris/infer", json=IRIS, timeout=30)
            assert r.status_code == 200, r.text


def test_deployments_list_shows_iris_live(browser, server):
    _predict(server, 25)
    browser.get("/console/#/deployments")
    browser.wait_for_text("Deployments", "iris", "ready", "v1 100%")
    # the request counter comes from /metrics
    WebDriverWait(browser.driver, 30, ignored_exceptions=FLAKY_DOM).until(
        lambda d: int(
            (d.find_element(By.CSS_SELECTOR, "tr[data-deployment=iris] td:nth-child(6)").text or "0")
            .replace(",", "")
            .replace("–", "0")
        )
        >= 25
    )
    row = browser.driver.find_element(By.CSS_SELECTOR, "tr[data-deployment=iris]").text
    assert "iris" in row and "v1" in row, row
    assert re.search(r"\d+(\.\d+)? ms", row), f"p99 shown: {row}"
    browser.screenshot("console-deployments")
    log = browser.drain()
    assert not log.failures(server.url), log.failures(server.url)
    assert not log.js_errors(), log.js_errors()


def test_deployment_page_shows_contract_state_and_traffic(browser, server):
    stop = threading.Event()

    def load():
        with requests.Session() as s:
            s.headers.update(auth_headers(server.token))
            while not stop.is_set():
                s.post(server.url + "/v2/models/iris/infer", json=IRIS, timeout=30)
                time.sleep(0.05)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        browser.get("/console/#/deployments/iris")
        text = browser.wait_for_text("Live traffic", "Loaded versions and contract", "float_input", "FP32", "Serving", "ready")
        assert "alias champion" in text, text[:1500]
        # four polls: the traffic chart has a line through three points
        WebDriverWait(browser.driver, 60, ignored_exceptions=FLAKY_DOM).until(
            lambda d: int(d.find_element(By.CSS_SELECTOR, "#chart-rate svg").get_attribute("data-points")) >= 3
        )
        assert browser.driver.find_elements(By.CSS_SELECTOR, "#chart-rate svg path.series-0")
        rate = browser.driver.find_element(By.CSS_SELECTOR, "#live .stats .stat:nth-child(2) .value").text
        assert rate.endswith("/s") and float(rate[:-2]) > 0, rate
        link = browser.driver.find_element(By.CSS_SELECTOR, "a[href='/#/models/iris/versions/1']")
        assert link.is_displayed()
        browser.screenshot("console-deployment")
    finally:
        stop.set()
        t.join(timeout=10)
    log = browser.drain()
    assert not log.failures(server.url), log.failures(server.url)
    assert not log.js_errors(), log.js_errors()


def test_unknown_deployment_says_so(browser, server):
    browser.get("/console/#/deployments/no-such-thing")
    browser.wait_for_text("There is no deployment named no-such-thing")
    browser.drain()


def test_tokens_create_list_revoke(browser, server):
    browser.get("/console/#/tokens")
    browser.wait_for_text("Create a token", "All tokens")
    d = browser.driver
    d.find_element(By.ID, "token-name").send_keys("console-made")
    d.find_element(By.CSS_SELECTOR, "input[name=scope][value=predict]").click()
    d.find_element(By.CSS_SELECTOR, "#create-token button[type=submit]").click()
    browser.wait_for_text("Copy it now")
    secret = d.find_element(By.ID, "new-token").text
    assert secret.startswith("slw_"), secret
    remember_secret(secret)
    # the new token works, with the scopes chosen
    r = requests.get(server.url + "/api/v1/deployments", headers=auth_headers(secret), timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(server.url + "/api/v1/tokens", json={"name": "x", "scopes": ["read"]},
                      headers=auth_headers(secret), timeout=10)
    assert r.status_code == 403
    # the picture shows where the secret appears, not the secret
    d.execute_script("document.getElementById('new-token').textContent = 'slw_' + '\u2022'.repeat(40)")
    browser.screenshot("console-tokens")
    d.find_element(By.CSS_SELECTOR, "tr[data-token=console-made] button[data-revoke]").click()
    d.switch_to.alert.accept()
    WebDriverWait(d, 20, ignored_exceptions=FLAKY_DOM).until(
        lambda d: "revoked" in d.find_element(By.CSS_SELECTOR, "tr[data-token=console-made]").text
    )
    r = requests.get(server.url + "/api/v1/deployments", headers=auth_headers(secret), timeout=10)
    assert r.status_code == 401
    log = browser.drain()
    assert not log.failures(server.url), log.failures(server.url)
    assert not log.js_errors(), log.js_errors()


def test_deployment_page_shows_a_rollout_in_progress(browser, server):
    """With the rollouts API (main's), the page shows the rollout: strategy, versions, steps, and
    after the first judged step its checks with their verdicts; aborted, it becomes a decision
    record."""
    h = auth_headers(server.token)
    api = server.url + "/api/2.0/mlflow"
    v1 = requests.get(api + "/model-versions/get", params={"name": "iris", "version": "1"}, headers=h, timeout=30)
    assert v1.status_code == 200, v1.text
    src = v1.json()["model_version"]
    made = requests.post(api + "/model-versions/create", json={"name": "iris", "source": src["source"],
                                                                "run_id": src.get("run_id")}, headers=h, timeout=30)
    assert made.status_code == 200, made.text
    candidate = made.json()["model_version"]["version"]
    plan = {"candidate": {"version": candidate}, "strategy": "canary", "steps": [20, 60],
            "step_seconds": 4, "min_requests": 10, "mode": "advisory"}
    r = requests.post(server.url + "/api/v1/deployments/iris/rollouts", json=plan, headers=h, timeout=60)
    if r.status_code == 404 and r.json().get("error_code") == "ENDPOINT_NOT_FOUND":
        import pytest

        pytest.skip("this server has no rollouts API")
    assert r.status_code == 200, r.text
    rollout_id = r.json()["id"]
    stop = threading.Event()

    def load():
        with requests.Session() as s:
            s.headers.update(h)
            while not stop.is_set():
                s.post(server.url + "/v2/models/iris/infer", json=IRIS, timeout=30)
                time.sleep(0.02)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        browser.get("/console/#/deployments/iris")
        browser.wait_for_text("Rollouts", "In progress", "canary", f"v{candidate}", "step 1: 20%", "step 2: 60%")
        # the first step is judged after step_seconds: reload until the checks show
        deadline = time.monotonic() + 60
        while True:
            browser.get("/console/#/deployments")
            browser.get("/console/#/deployments/iris")
            browser.wait_for_text("Rollouts")
            if browser.driver.find_elements(By.CSS_SELECTOR, "#rollout-checks"):
                break
            assert time.monotonic() < deadline, "no judged step shown within 60 s"
            time.sleep(2)
        checks = browser.driver.find_element(By.CSS_SELECTOR, "#rollout-checks").text
        assert "error_rate" in checks and re.search(r"pass|fail|inconclusive", checks), checks
        row = browser.driver.find_element(By.CSS_SELECTOR, "#rollouts").text
        assert "advisory" in row, row
        browser.driver.execute_script("document.getElementById('rollouts').scrollIntoView()")
        browser.screenshot("console-rollout")
    finally:
        stop.set()
        t.join(timeout=10)
        requests.post(f"{server.url}/api/v1/deployments/iris/rollouts/{rollout_id}/abort", headers=h, timeout=30)
    browser.get("/console/#/deployments")
    browser.get("/console/#/deployments/iris")
    browser.wait_for_text("Decision records", rollout_id, "aborted")
    log = browser.drain()
    assert not log.failures(server.url), log.failures(server.url)
    assert not log.js_errors(), log.js_errors()


# ---------------------------------------------------------------------------------------------
# Monitoring panels: a deployment of its own, with the prediction log on (the default), driven
# through no reference -> too few rows -> drift, with ground truth for some of its predictions.

WATCH = "iris-watch"
# Iris' feature means and standard deviations: the reference is drawn around them.
IRIS_STATS = [(5.84, 0.83), (3.05, 0.43), (3.76, 1.76), (1.20, 0.76)]


def _rows(rng: random.Random, n: int, shift0: float = 0.0, spread1: float = 1.0) -> list[list[float]]:
    out = []
    for _ in range(n):
        row = [rng.gauss(m, s) for m, s in IRIS_STATS]
        row[0] += shift0 * IRIS_STATS[0][1]
        row[1] = IRIS_STATS[1][0] + (row[1] - IRIS_STATS[1][0]) * spread1
        out.append([round(x, 3) for x in row])
    return out


def _infer(session: requests.Session, server, rows: list[list[float]]) -> tuple[str, list[int]]:
    """One V2 request of ``rows``: its request id and the predicted labels."""
    body = {"inputs": [{"name": "float_input", "shape": [len(rows), 4], "datatype": "FP32",
                        "data": [x for r in rows for x in r]}]}
    r = session.post(f"{server.url}/v2/models/{WATCH}/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    labels = next(o for o in r.json()["outputs"] if o["name"] == "output_label")["data"]
    return r.headers["x-request-id"], labels


def _api(server, path: str) -> dict:
    r = requests.get(f"{server.url}/api/v1/deployments/{WATCH}/{path}", headers=auth_headers(server.token), timeout=60)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    return r.json()


def _text(el) -> str:
    """An element's text as written (textContent: no CSS text-transform), whitespace collapsed."""
    return " ".join((el.get_attribute("textContent") or "").split())


def _close(shown: str, value: float) -> bool:
    """Whether the console's rendering of a statistic (4 decimals, or 1 in exponent notation) is
    ``value``."""
    x = float(shown.replace(",", ""))
    if "e" in shown:
        return abs(x - value) <= 0.06 * abs(value)
    return abs(x - value) <= 6e-5


def _stat(driver, stat_id: str) -> str:
    return _text(driver.find_element(By.CSS_SELECTOR, f"#{stat_id} .value"))


def _table(driver, table_id: str) -> list[dict[str, str]]:
    """The rows of a console table as {header: cell text}, in order."""
    table = driver.find_element(By.ID, table_id)
    heads = [_text(th) for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    return [dict(zip(heads, (_text(td) for td in tr.find_elements(By.TAG_NAME, "td"))))
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _open_watch(browser) -> None:
    """Renders the deployment's page afresh: the list first (until the old page is gone), then it."""
    d = browser.driver
    browser.get("/console/#/deployments")
    WebDriverWait(d, 30, ignored_exceptions=FLAKY_DOM).until(
        lambda d: d.find_elements(By.ID, "deployments") and not d.find_elements(By.ID, "drift"))
    browser.get(f"/console/#/deployments/{WATCH}")
    WebDriverWait(d, 45, ignored_exceptions=FLAKY_DOM).until(
        lambda d: all(d.find_elements(By.ID, i) for i in ("drift", "predictions", "performance")))
    browser.wait_for_text(WATCH, "Drift", "Prediction log", "Feedback and performance")


def _check_predictions(browser, server) -> dict:
    api = _api(server, "predictions?order=desc&limit=20")
    shown = _table(browser.driver, "predictions-log")
    assert len(shown) == len(api["predictions"]) == min(20, api["count"]), (len(shown), api["count"])
    for row, want in zip(shown, api["predictions"]):
        assert row["Request id"] == want["request_id"], (row, want)
        assert row["Row"] == str(want["row"]) and row["Version"] == "v" + want["version"], (row, want)
        assert row["Status"] == str(want["status"]) and row["Role"] == want["role"], (row, want)
        assert row["output_label"] == str(want["output_label"]), (row, want)
        assert _close(row["float_input[0]"], want["float_input[0]"]), (row, want)
    return api


def test_monitoring_panels_show_drift_predictions_and_feedback(browser, server):
    h = auth_headers(server.token)
    rng = random.Random(20261201)
    put_deployment(server.url, server.token, WATCH,
                   {"model": "iris", "version": "1", "monitoring": {"drift": {"min_rows": 80}}})
    served: list[tuple[str, int, int]] = []  # (request id, row, predicted label)
    try:
        with requests.Session() as s:
            s.headers.update(h)
            # 1. traffic without a reference: drift says why not, the log has the rows
            for _ in range(10):
                rid, labels = _infer(s, server, _rows(rng, 2))
                served += [(rid, i, label) for i, label in enumerate(labels)]
            drift = _api(server, "drift")
            assert drift["status"] == "no_reference", drift
            _open_watch(browser)
            status = browser.driver.find_element(By.ID, "drift-status")
            assert status.get_attribute("data-status") == "no_reference"
            assert drift["reason"] in _text(status), (_text(status), drift["reason"])
            assert "/reference" in _text(browser.driver.find_element(By.ID, "drift")), "says how to upload one"
            assert not browser.driver.find_elements(By.ID, "drift-windows")
            _check_predictions(browser, server)
            assert _stat(browser.driver, "stat-feedback-rows") == "0"
            assert "No ground truth yet" in _text(browser.driver.find_element(By.ID, "performance"))

            # 2. a reference (CSV upload), still too few rows in the window
            csv = "float_input[0],float_input[1],float_input[2],float_input[3]\n" + "\n".join(
                ",".join(str(x) for x in r) for r in _rows(rng, 300))
            r = requests.put(f"{server.url}/api/v1/deployments/{WATCH}/reference", data=csv,
                             headers={**h, "Content-Type": "text/csv"}, timeout=60)
            assert r.status_code == 200, r.text
            drift = _api(server, "drift")
            assert drift["status"] == "insufficient_data", drift
            _open_watch(browser)
            status = browser.driver.find_element(By.ID, "drift-status")
            assert status.get_attribute("data-status") == "insufficient_data"
            assert drift["reason"] in _text(status), (_text(status), drift["reason"])
            assert _stat(browser.driver, "stat-drift-rows") == str(drift["current_count"]) == "20"
            assert _stat(browser.driver, "stat-reference-rows") == "300"

            # 3. shifted traffic (feature 0 by 1.5 sd, feature 1 twice as spread): drift
            for _ in range(30):
                rid, labels = _infer(s, server, _rows(rng, 3, shift0=1.5, spread1=2.0))
                served += [(rid, i, label) for i, label in enumerate(labels)]

        # 4. ground truth for 12 predictions (9 right, 3 wrong) and 2 unknown request ids
        picked = served[::9][:12]
        assert len(picked) == 12
        feedback = [{"request_id": rid, "row": row, "label": label if k < 9 else (label + 1) % 3}
                    for k, (rid, row, label) in enumerate(picked)]
        feedback += [{"request_id": "no-such-request-1", "label": 0}, {"request_id": "no-such-request-2", "label": 1}]
        r = requests.post(f"{server.url}/api/v1/deployments/{WATCH}/feedback", json=feedback, headers=h, timeout=60)
        assert r.status_code == 200, r.text
        assert (r.json()["matched"], r.json()["unknown"]) == (12, 2), r.json()

        drift = _api(server, "drift")
        windows = {w: _api(server, f"drift?window={w}") for w in (300, 900, 3600, 21600, 86400)}
        performance = _api(server, "performance")
        assert drift["status"] == "ok" and drift["current_count"] == 110, drift
        assert next(f for f in drift["features"] if f["name"] == "float_input[0]")["drifted"], drift
        v1 = next(v for v in performance["versions"] if v["version"] == "1")
        assert (v1["joined"], v1["accuracy"]) == (12, 0.75), performance
        assert (performance["feedback_rows"], performance["unmatched_feedback"]) == (14, 2), performance

        _open_watch(browser)
        d = browser.driver
        # drift: the summary, each column's verdict, the windows
        WebDriverWait(d, 30, ignored_exceptions=FLAKY_DOM).until(lambda d: d.find_elements(By.ID, "drift-features"))
        assert not d.find_elements(By.ID, "drift-status"), "status ok: no notice"
        assert _stat(d, "stat-dataset-drift") == ("yes" if drift["dataset_drift"] else "no")
        assert _stat(d, "stat-drift-share") == f"{drift['drift_share']:.3f}"
        assert _stat(d, "stat-drift-rows") == str(drift["current_count"])
        assert _stat(d, "stat-reference-rows") == str(drift["reference"]["rows"])
        rows = {r["Column"]: r for r in _table(d, "drift-features")}
        assert set(rows) == {f["name"] for f in drift["features"]}, rows
        for f in drift["features"]:
            row = rows[f["name"]]
            assert row["Method"] == f["method"] and row["Kind"] == f["kind"], (row, f)
            assert _close(row["Statistic"], f["statistic"]), (row, f)
            assert _close(row["p-value"], f["p_value"]) if f["p_value"] is not None else row["p-value"] == "–"
            assert _close(row["Threshold"], f["threshold"]) and _close(row["PSI"], f["psi"]), (row, f)
            assert row["Drift"] == ("drift" if f["drifted"] else "no drift"), (row, f)
            assert row["Reference rows"] == str(f["reference_count"]), (row, f)
            assert row["Current rows"] == str(f["current_count"]), (row, f)
        not_tested = _text(d.find_element(By.ID, "drift-not-tested"))
        assert all(n in not_tested for n in drift["not_tested"]), not_tested
        by_window = {r["Window"]: r for r in _table(d, "drift-window-table")}
        labels = {300: "last 5 min", 900: "last 15 min", 3600: "last 1 h", 21600: "last 6 h", 86400: "last 1 d"}
        assert set(by_window) == set(labels.values()), by_window
        for w, report in windows.items():
            row = by_window[labels[w]]
            assert row["Rows"] == str(report["current_count"]), (w, row)
            assert row["Share"] == f"{report['drift_share']:.3f}", (w, row)
            for f in report["features"]:
                assert _close(row[f["name"]], f["statistic"]), (w, row, f)
        chart = d.find_element(By.CSS_SELECTOR, "#drift-windows svg")
        assert int(chart.get_attribute("data-points")) == 5
        assert len(chart.find_elements(By.TAG_NAME, "path")) == len(drift["features"])
        bars = d.find_elements(By.CSS_SELECTOR, "#drift svg rect.bar")
        assert len(bars) == len(drift["features"])
        assert len(d.find_elements(By.CSS_SELECTOR, "#drift svg rect.bar.flag")) == sum(f["drifted"] for f in drift["features"])

        # the prediction log: the newest rows, as the API reads them back
        api = _check_predictions(browser, server)
        assert api["truncated"], "110 rows logged, 20 shown"
        sent = {(rid, row) for rid, row, _ in served}
        assert all((p["request_id"], p["row"]) in sent for p in api["predictions"]), api["predictions"]
        assert "20 rows" in _text(d.find_element(By.CSS_SELECTOR, "#predictions h2")), "says how many it shows"

        # feedback and performance
        assert _stat(d, "stat-feedback-rows") == str(performance["feedback_rows"])
        assert _stat(d, "stat-unmatched") == str(performance["unmatched_feedback"])
        assert _stat(d, "performance-v1-joined") == str(v1["joined"])
        assert _stat(d, "performance-v1-accuracy") == f"{v1['accuracy'] * 100:.1f}%" == "75.0%"
        classes = {r["Class"]: r for r in _table(d, "performance-v1-classes")}
        assert set(classes) == {c["label"] for c in v1["classes"]}, classes
        for c in v1["classes"]:
            row = classes[c["label"]]
            for key, title in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")):
                assert row[title] == f"{c[key]:.3f}", (row, c)
            assert row["Support"] == str(c["support"]), (row, c)

        for panel, picture in (("drift", "console-drift"), ("predictions", "console-predictions"),
                               ("performance", "console-feedback")):
            d.execute_script(f"document.getElementById('{panel}').scrollIntoView()")
            browser.screenshot(picture)
        log = browser.drain()
        assert not log.failures(server.url), log.failures(server.url)
        assert not log.js_errors(), log.js_errors()
    finally:
        delete_deployment(server.url, server.token, WATCH)
