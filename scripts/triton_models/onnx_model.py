"""Triton Python-backend model running one ONNX file with ONNX Runtime inside the backend's own
process (model.py of a model that scripts/triton_repo.py generates). Triton's dynamic batcher
hands execute() the whole batch; the requests' rows (a request may carry several) are
concatenated along the first dimension, run once, and split back into one response each."""

import json
import time

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from model_support import BatchLog, parameter


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        threads = int(parameter(config, "ort_threads", "0"))
        if threads > 0:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if parameter(config, "cuda") == "true":
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(parameter(config, "onnx_model"), opts, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.batch_log = BatchLog(config, args["model_name"], args["model_instance_name"])

    def execute(self, requests):
        start_ns = time.monotonic_ns()
        per_request = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names] for r in requests
        ]
        rows = [inputs[0].shape[0] for inputs in per_request]
        feed = {
            name: np.concatenate([inputs[k] for inputs in per_request]) for k, name in enumerate(self.input_names)
        }
        outputs = self.session.run(self.output_names, feed)
        bounds = np.cumsum([0] + rows)
        responses = [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(name, out[lo:hi]) for name, out in zip(self.output_names, outputs)]
            )
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        self.batch_log.record(sum(rows), start_ns, time.monotonic_ns())
        return responses

    def finalize(self):
        self.batch_log.close()
