"""The official MLflow UI, served unchanged by Slipway, rendering what the mlflow client logged.

Each page must show the expected names and values, with no failed request to the server (4xx/5xx
or no answer, from Chrome's performance log) and no uncaught JavaScript error; the other console
messages are written to target/browser-logs/ for reading.
"""

from __future__ import annotations

import json

import pytest

from conftest import LOGS


def _visit(browser, server, name: str, path: str, *texts: str) -> str:
    browser.get(path)
    text = browser.wait_for_text(*texts)
    browser.settle()
    log = browser.drain()
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"mlflow-{name}.json").write_text(
        json.dumps(
            {
                "path": path,
                "requests": [r.__dict__ for r in log.requests],
                "console": log.console,
            },
            indent=1,
        )
    )
    browser.screenshot(f"mlflow-{name}")
    failures = log.failures(server.url)
    assert not failures, f"{path}: failed requests:\n" + "\n".join(failures)
    errors = log.js_errors()
    assert not errors, f"{path}: uncaught JavaScript errors:\n" + "\n".join(errors)
    return text


def test_experiment_list(browser, server, seeded):
    _visit(browser, server, "experiments", "/#/experiments", seeded.experiment_name)


def test_run_table(browser, server, seeded):
    _visit(
        browser,
        server,
        "runs",
        f"/#/experiments/{seeded.experiment_id}/runs",
        seeded.run_name,
        seeded.other_run_name,
    )


def test_run_page_overview(browser, server, seeded):
    text = _visit(
        browser,
        server,
        "run",
        f"/#/experiments/{seeded.experiment_id}/runs/{seeded.run_id}",
        seeded.run_name,
        "learning_rate",
        "0.01",
    )
    assert "loss" in text and "accuracy" in text, text[:2000]


def test_run_metric_chart(browser, server, seeded):
    _visit(
        browser,
        server,
        "run-metrics",
        f"/#/experiments/{seeded.experiment_id}/runs/{seeded.run_id}/model-metrics",
        "loss",
        "accuracy",
    )
    # the charts are drawn (plotly SVG paths for the lines)
    lines = browser.driver.execute_script(
        "return document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line').length"
    )
    assert lines >= 2, f"expected plotted lines for loss and accuracy, found {lines}"


def test_artifact_preview(browser, server, seeded):
    _visit(
        browser,
        server,
        "artifacts",
        f"/#/experiments/{seeded.experiment_id}/runs/{seeded.run_id}/artifacts/docs/notes.txt",
        "notes.txt",
        "hello from the browser test",
    )


def test_registered_models(browser, server, seeded):
    _visit(browser, server, "models", "/#/models", seeded.model_name, "champion")


def test_model_version_page(browser, server, seeded):
    _visit(
        browser,
        server,
        "model-version",
        f"/#/models/{seeded.model_name}/versions/2",
        "Version 2",
        "champion",
    )


def test_compare_runs(browser, server, seeded):
    """The run table's "Compare" of two runs: their names, parameters and metrics side by side."""
    runs = json.dumps([seeded.run_id, seeded.version_run_ids["1"]])
    text = _visit(
        browser,
        server,
        "compare-runs",
        f"/#/compare-runs?runs={runs}&experiments={json.dumps([seeded.experiment_id])}",
        "Comparing 2 Runs",
        seeded.run_name,
        "learning_rate",
        "epochs",
    )
    assert "0.01" in text and "20" in text, text[:2000]


def test_metric_page(browser, server, seeded):
    """A metric's own page (linked from compare-runs): the chart of its history and the table of
    its latest, min and max values."""
    runs = json.dumps([seeded.run_id])
    exps = json.dumps([seeded.experiment_id])
    text = _visit(
        browser,
        server,
        "metric",
        f"/#/metric?runs={runs}&metric=%22loss%22&experiments={exps}&plot_metric_keys=%5B%22loss%22%5D"
        "&plot_layout={}&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=false"
        "&deselected_curves=[]&last_linear_y_axis_range=[]",
        seeded.run_name,
        "Latest",
        "Min",
        "Max",
    )
    # loss = 1/(step+1) for steps 0..19: latest and min 0.05 at step 19, max 1 at step 0
    assert "0.05 (step=19)" in text and "1 (step=0)" in text, text[:2000]
    lines = browser.driver.execute_script(
        "return document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line').length"
    )
    assert lines >= 1, "the metric's history is plotted"


def test_model_version_compare(browser, server, seeded):
    """The registered model page's "Compare" of its two versions."""
    runs = json.dumps(seeded.version_run_ids)
    text = _visit(
        browser,
        server,
        "model-version-compare",
        f"/#/compare-model-versions?name=%22{seeded.model_name}%22&runs={runs}",
        "Comparing 2 Versions",
        seeded.version_run_ids["1"],
        seeded.version_run_ids["2"],
    )
    assert "Schema" in text, text[:2000]


@pytest.mark.parametrize(
    "name,path",
    [
        ("home", "/#/"),
        ("settings", "/#/settings"),
        ("settings-llm-connections", "/#/settings/llm-connections"),
        ("settings-webhooks", "/#/settings/webhooks"),
        ("mcp-registry", "/#/mcp-registry"),
        ("compare-experiments", "/#/compare-experiments/s?experiments=[%220%22,%22{exp}%22]"),
        ("experiment-overview", "/#/experiments/{exp}/overview/usage"),
        ("experiment-review", "/#/experiments/{exp}/review-queue"),
        ("experiment-judges", "/#/experiments/{exp}/judges"),
        ("experiment-prompts", "/#/experiments/{exp}/prompts"),
        ("runs-charts", "/#/experiments/{exp}/runs?compareRunsMode=CHART"),
        ("run-system-metrics", "/#/experiments/{exp}/runs/{run}/system-metrics"),
        ("run-traces", "/#/experiments/{exp}/runs/{run}/traces"),
        ("logged-model-traces", "/#/experiments/{exp}/models/{model_id}/traces"),
        ("model", "/#/models/{model}"),
        ("logged-models", "/#/experiments/{exp}/models"),
        ("logged-model", "/#/experiments/{exp}/models/{model_id}"),
        ("logged-model-artifacts", "/#/experiments/{exp}/models/{model_id}/artifacts"),
        ("experiment", "/#/experiments/{exp}"),
        ("traces", "/#/experiments/{exp}/traces"),
        ("chat-sessions", "/#/experiments/{exp}/chat-sessions"),
        ("datasets", "/#/experiments/{exp}/datasets"),
        ("evaluation-runs", "/#/experiments/{exp}/evaluation-runs"),
        ("prompts", "/#/prompts"),
        ("run-by-id", "/#/runs/{run}"),
    ],
)
def test_other_pages_fail_quietly(browser, server, seeded, name, path):
    """Pages beyond the core ones load without failed requests or uncaught errors (features
    Slipway lacks, such as traces, answer "none")."""
    path = path.format(
        exp=seeded.experiment_id, model=seeded.model_name, model_id=seeded.model_id, run=seeded.run_id
    )
    browser.get(path)
    text = browser.wait_for_text("MLflow" if name == "home" else "")
    browser.settle(quiet_s=2.0)
    text = browser.driver.find_element("tag name", "body").text
    log = browser.drain()
    (LOGS / f"mlflow-{name}.json").write_text(
        json.dumps({"path": path, "requests": [r.__dict__ for r in log.requests], "console": log.console}, indent=1)
    )
    failures = log.failures(server.url)
    assert not failures, f"{path}: failed requests:\n" + "\n".join(failures)
    assert not log.js_errors(), f"{path}: uncaught JavaScript errors:\n" + "\n".join(log.js_errors())
    # quietly: no error message on the page either (MLflow's UI shows what an answer lacked)
    for complaint in ("No endpoint at", "Failed to load", "Page Not Found", "Something went wrong"):
        assert complaint not in text, f"{path}: the page says {complaint!r}:\n{text[:1500]}"


def test_ui_boots_after_sign_in_without_failures(fresh_browser, server, seeded):
    """Signing in lands on the MLflow UI; loading the app itself (the requests every page makes
    at start: server info, current user, assistant, experiments) fails nothing."""
    fresh_browser.sign_in(server.token, "/")
    fresh_browser.wait_for_text("MLflow")
    fresh_browser.settle(quiet_s=2.0)
    log = fresh_browser.drain()
    (LOGS / "mlflow-boot.json").write_text(
        json.dumps({"path": "/", "requests": [r.__dict__ for r in log.requests], "console": log.console}, indent=1)
    )
    assert any("/static-files/" in r.url for r in log.requests), "the app's assets were loaded"
    failures = log.failures(server.url)
    assert not failures, "failed requests while the app started:\n" + "\n".join(failures)
    assert not log.js_errors(), log.js_errors()
