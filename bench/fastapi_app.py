"""Reference app: FastAPI + uvicorn + onnxruntime, written the way its users write it.

A pydantic request model for the Open Inference Protocol V2 body, numpy to build the
input array, ``session.run``, and the outputs returned as V2 JSON. One model per process,
taken from BENCH_ONNX. Run: uvicorn bench.fastapi_app:app --workers 1
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(
    os.environ["BENCH_ONNX"], options, providers=["CPUExecutionProvider"]
)
output_names = [o.name for o in session.get_outputs()]
NP_TO_V2 = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}

app = FastAPI()


class TensorIn(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[TensorIn]


@app.get("/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{model_name}/infer")
def infer(model_name: str, request: InferRequest):
    feeds = {}
    for tensor in request.inputs:
        try:
            feeds[tensor.name] = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
    results = session.run(output_names, feeds)
    return {
        "model_name": model_name,
        "outputs": [
            {
                "name": name,
                "shape": list(value.shape),
                "datatype": NP_TO_V2.get(str(value.dtype), "FP32"),
                "data": value.ravel().tolist(),
            }
            for name, value in zip(output_names, results)
        ],
    }
