"""Triton Python-backend controlled-service model (model.py of a model that
scripts/triton_repo.py generates from basin's controlled JSON): it computes nothing, but holds
each batch for a service time drawn from the experiment's cost-table row of that batch size
(service.json beside this file), from the moment execute() is entered. Its answers (a one-hot
of class 0 per row) carry no information: basin takes accuracy from the quality table."""

import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils

from model_support import BatchLog, ServiceTime, hold_until, instance_index

NUM_CLASSES = 10


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        with open(os.path.join(os.path.dirname(__file__), "service.json"), encoding="utf-8") as f:
            table = json.load(f)
        # One stream per instance, so that instances of a model do not replay each other's draws.
        seed = table["seed"] + instance_index(args["model_instance_name"])
        self.service = ServiceTime(table["service"], seed)
        self.spin_ns = table["spin_us"] * 1000
        self.batch_log = BatchLog(config, args["model_name"], args["model_instance_name"])

    def execute(self, requests):
        start_ns = time.monotonic_ns()
        rows = [pb_utils.get_input_tensor_by_name(r, "input").as_numpy().shape[0] for r in requests]
        deadline_ns = start_ns + round(self.service.draw_s(sum(rows)) * 1e9)
        responses = []
        for n in rows:
            probs = np.zeros((n, NUM_CLASSES), dtype=np.float32)
            probs[:, 0] = 1.0
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("probs", probs)]))
        # Answers are built first, so that the hold, not their cost, decides the batch's duration.
        hold_until(deadline_ns, self.spin_ns)
        self.batch_log.record(sum(rows), start_ns, time.monotonic_ns())
        return responses

    def finalize(self):
        self.batch_log.close()
