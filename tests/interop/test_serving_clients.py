"""Standard V2 client libraries against the demo deployment: tritonclient.http and KServe's SDK.

The server is a private one started without ``--no-demo`` (fixture ``demo_server``), so the
deployment ``iris`` serves the bundled ``models/demo/iris/model.onnx`` (StandardScaler +
LogisticRegression, skl2onnx defaults with ZipMap). Every one of the 150 iris rows goes through
each client in batches; labels must equal onnxruntime's exactly and probabilities must be within
1e-6, both with the binary tensor extension and with plain JSON.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import onnxruntime as ort
import pytest

from serving_models import DEMO_DIR, assert_close, assert_exact, iris_data
from slipway_testlib import create_token

pytestmark = pytest.mark.slipway

MODEL = "iris"
BATCH = 50  # under the default max_batch_size (64)


@pytest.fixture(scope="module")
def iris_reference():
    """(batches of rows, onnxruntime labels, probability matrix, class labels) for all 150 rows."""
    x, _ = iris_data()
    sess = ort.InferenceSession(str(DEMO_DIR / "model.onnx"), providers=["CPUExecutionProvider"])
    batches, labels, probs = [], [], []
    for i in range(0, len(x), BATCH):
        xb = x[i: i + BATCH]
        lab, zm = sess.run(None, {"float_input": xb})
        classes = sorted(zm[0].keys())
        batches.append(xb)
        labels.append(lab)
        probs.append(np.array([[row[c] for c in classes] for row in zm], dtype=np.float32))
    return batches, labels, probs, classes


@pytest.fixture(scope="module")
def predict_token(demo_server):
    """A token with only the ``predict`` scope (what an inference client would be given)."""
    return create_token(demo_server.url, demo_server.token, ["predict"])


def test_demo_expected_json_matches_onnxruntime(iris_reference):
    """models/demo/iris/expected.json agrees with onnxruntime here (so the reference is sound)."""
    batches, labels, probs, classes = iris_reference
    exp = json.loads((DEMO_DIR / "expected.json").read_text())
    all_labels = np.concatenate(labels)
    all_probs = np.concatenate(probs)
    rows = exp["rows"]
    assert_exact(all_labels[rows], np.array(exp["outputs"]["output_label"]), what="expected.json labels")
    assert_close(all_probs[rows], np.array(exp["outputs"]["output_probability"]), what="expected.json probabilities")
    assert classes == [0, 1, 2]


# --------------------------------------------------------------------------------------------
# tritonclient.http


@pytest.fixture(scope="module")
def triton(demo_server):
    import tritonclient.http as httpclient

    c = httpclient.InferenceServerClient(
        url=demo_server.url.removeprefix("http://"), connection_timeout=10.0, network_timeout=60.0
    )
    yield c
    c.close()


def test_tritonclient_health_metadata_config(triton, predict_token):
    h = {"Authorization": f"Bearer {predict_token}"}
    assert triton.is_server_live(headers=h) is True
    assert triton.is_server_ready(headers=h) is True
    assert triton.is_model_ready(MODEL, headers=h) is True
    assert triton.is_model_ready(MODEL, model_version="1", headers=h) is True
    assert triton.is_model_ready("no-such-model", headers=h) is False

    md = triton.get_model_metadata(MODEL, headers=h)
    assert md["name"] == MODEL
    assert md["versions"] == ["1"]
    assert md["platform"] == "onnxruntime_onnx"
    assert md["inputs"] == [{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}]
    outs = {o["name"]: o for o in md["outputs"]}
    assert set(outs) == {"output_label", "output_probability"}
    assert outs["output_label"]["datatype"] == "INT64"
    assert outs["output_probability"]["datatype"] == "FP32"

    cfg = triton.get_model_config(MODEL, headers=h)
    assert cfg["name"] == MODEL
    assert cfg["max_batch_size"] == 64  # the server default; the batch dimension is not in dims
    assert cfg["input"] == [{"name": "float_input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert {o["name"]: o["data_type"] for o in cfg["output"]} == {
        "output_label": "TYPE_INT64",
        "output_probability": "TYPE_FP32",
    }

    meta = triton.get_server_metadata(headers=h)
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("mode", ["default-binary", "json", "no-requested-outputs"])
def test_tritonclient_infer_all_iris_rows(triton, predict_token, iris_reference, mode):
    import tritonclient.http as httpclient

    h = {"Authorization": f"Bearer {predict_token}"}
    batches, labels, probs, classes = iris_reference
    for i, xb in enumerate(batches):
        inp = httpclient.InferInput("float_input", list(xb.shape), "FP32")
        if mode == "json":
            inp.set_data_from_numpy(xb, binary_data=False)
            outs = [
                httpclient.InferRequestedOutput("output_label", binary_data=False),
                httpclient.InferRequestedOutput("output_probability", binary_data=False),
            ]
        elif mode == "default-binary":
            inp.set_data_from_numpy(xb)  # binary_data=True by default
            outs = [httpclient.InferRequestedOutput("output_label"), httpclient.InferRequestedOutput("output_probability")]
        else:
            inp.set_data_from_numpy(xb)
            outs = None
        res = triton.infer(MODEL, [inp], outputs=outs, headers=h, request_id=f"batch-{i}")
        resp = res.get_response()
        assert resp["model_name"] == MODEL and resp["model_version"] == "1", resp
        assert resp.get("id") == f"batch-{i}", resp
        out_lab = res.as_numpy("output_label")
        out_prob = res.as_numpy("output_probability")
        assert out_lab is not None and out_prob is not None, resp
        assert out_lab.dtype == np.int64 and out_prob.dtype == np.float32
        assert_exact(out_lab, labels[i], what=f"{mode} batch {i} labels")
        assert_close(out_prob, probs[i], what=f"{mode} batch {i} probabilities")
        prob_meta = res.get_output("output_probability")
        assert prob_meta["parameters"]["class_labels"] == classes, prob_meta
        if mode == "default-binary":
            assert "binary_data_size" in prob_meta["parameters"], prob_meta
        if mode == "json":
            assert "binary_data_size" not in (prob_meta.get("parameters") or {}), prob_meta


def test_tritonclient_versions_and_errors(triton, predict_token, iris_reference):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    h = {"Authorization": f"Bearer {predict_token}"}
    batches, labels, _, _ = iris_reference
    xb = batches[1][:5]
    inp = httpclient.InferInput("float_input", list(xb.shape), "FP32")
    inp.set_data_from_numpy(xb)
    res = triton.infer(MODEL, [inp], model_version="1", headers=h)
    assert_exact(res.as_numpy("output_label"), labels[1][:5], what="versions/1 labels")

    with pytest.raises(InferenceServerException) as e:
        triton.infer(MODEL, [inp], model_version="7", headers=h)
    assert "7" in str(e.value)
    with pytest.raises(InferenceServerException):
        triton.infer(MODEL, [inp])  # no token
    with pytest.raises(InferenceServerException):
        triton.infer("no-such-model", [inp], headers=h)
    # Still serving after the errors.
    res = triton.infer(MODEL, [inp], headers=h)
    assert_exact(res.as_numpy("output_label"), labels[1][:5], what="after errors")


# --------------------------------------------------------------------------------------------
# KServe SDK (InferenceRESTClient, protocol v2)


def test_kserve_rest_client_v2_all_iris_rows(demo_server, predict_token, iris_reference):
    pytest.importorskip("kserve", reason="kserve not installed (tests/interop/requirements.txt)")
    from kserve import InferInput, InferRequest, InferenceRESTClient, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    h = {"Authorization": f"Bearer {predict_token}"}
    base = demo_server.url
    batches, labels, probs, classes = iris_reference

    async def run():
        async with InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=60)) as c:
            assert await c.is_server_live(base, headers=h) is True
            assert await c.is_server_ready(base, headers=h) is True
            assert await c.is_model_ready(base, MODEL, headers=h) is True
            assert await c.is_model_ready(base, "no-such-model", headers=h) is False
            for binary in (True, False):
                for i, xb in enumerate(batches):
                    inp = InferInput("float_input", list(xb.shape), "FP32")
                    inp.set_data_from_numpy(xb, binary_data=binary)
                    outs = [
                        RequestedOutput("output_label", {"binary_data": binary}),
                        RequestedOutput("output_probability", {"binary_data": binary}),
                    ]
                    resp_headers: dict = {}
                    res = await c.infer(
                        base,
                        InferRequest(MODEL, [inp], request_id=f"k{i}", request_outputs=outs),
                        model_name=MODEL,
                        headers=dict(h),
                        response_headers=resp_headers,
                    )
                    assert resp_headers.get("x-slipway-model-version") == "1", resp_headers
                    # (InferResponse.from_bytes drops model_version; the header carries it.)
                    assert res.model_name == MODEL and res.id == f"k{i}"
                    got = {o.name: o for o in res.outputs}
                    what = f"kserve binary={binary} batch {i}"
                    assert_exact(got["output_label"].as_numpy(), labels[i], what=what + " labels")
                    assert_close(got["output_probability"].as_numpy(), probs[i], what=what + " probabilities")
                    assert got["output_probability"].parameters["class_labels"] == classes
            # An HTTP error surfaces as httpx.HTTPStatusError with the server's message.
            import httpx

            bad = InferInput("nope", [1, 4], "FP32")
            bad.set_data_from_numpy(batches[0][:1], binary_data=False)
            with pytest.raises(httpx.HTTPStatusError) as e:
                await c.infer(base, InferRequest(MODEL, [bad]), model_name=MODEL, headers=dict(h))
            assert e.value.response.status_code == 400

    asyncio.run(run())
