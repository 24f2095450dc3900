"""The naive baseline for the HTTP benchmark: the same model, dense (no pruning, no ONNX),
behind FastAPI's default way of doing things: a pydantic model parses the nested lists of the
body, another serializes the answer.

    uvicorn bench.naive_app:create_app --factory --port 8001   (MRMP_MODEL_PATH picks the model)
"""

from __future__ import annotations

import os

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel

from mrmp.derive import derive
from mrmp.runtime import TorchRunner
from mrmp.skeleton import describe_batch
from mrmp.store import load_model
from service.settings import DEFAULT_MODEL


class Body(BaseModel):
    sequences: list[list[list[list[float]]]]


class Prediction(BaseModel):
    label: str
    class_index: int
    score: float


class Answer(BaseModel):
    predictions: list[Prediction]


def create_app() -> FastAPI:
    torch.set_num_threads(1)
    model, manifest = load_model(os.environ.get("MRMP_MODEL_PATH", DEFAULT_MODEL))
    descriptor = manifest.descriptor_config
    runner = TorchRunner(derive(model, 0.0)[0])
    names = manifest.class_names
    app = FastAPI()

    @app.post("/classify")
    def classify(body: Body) -> Answer:
        x = describe_batch(body.sequences, descriptor, model.config.num_joints)
        logits = runner(x)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        return Answer(
            predictions=[
                Prediction(label=names[int(p.argmax())], class_index=int(p.argmax()), score=p.max())
                for p in probs
            ]
        )

    @app.post("/ping")
    def ping() -> dict:
        return {}

    return app
