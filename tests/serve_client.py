"""The client side of tests/serve.rs: a real KServe v2 client (tritonclient) against `basin serve`.

    serve_client.py traffic URL MODELS_DIR MODEL N OUT.json   # N requests, answers checked
    serve_client.py bad URL MODEL                             # malformed requests -> 4xx
    serve_client.py final RUN_DIR MIN MAX                     # the written run: MIN..MAX requests
    serve_client.py burst URL MODELS_DIR MODEL N STATUS       # N requests, each answered STATUS
    serve_client.py ready URL true|false SECONDS              # /v2/health/ready turns so in time

Each mode exits non-zero with a message when a check fails.
"""

import http.client
import json
import math
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np


def fail(msg):
    print(f"serve_client: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def load_digits(models_dir):
    rows = np.loadtxt(Path(models_dir) / "digits_test.csv", delimiter=",", skiprows=1, dtype=np.float64)
    labels = rows[:, 2].astype(int)
    features = rows[:, 3:].astype(np.float32)
    quality = {}
    with open(Path(models_dir) / "quality.csv") as f:
        next(f)
        for line in f:
            sample, model, _conf, correct = line.strip().split(",")
            quality[(model, int(sample))] = int(correct)
    return labels, features, quality


def wait_ready(client, seconds=60):
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            if client.is_server_ready():
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.1)
    fail("the gateway never became ready")


def scrape(url):
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def counter_total(families, name):
    fam = families.get(name)
    check(fam is not None, f"/metrics has no {name} (families: {sorted(families)})")
    return sum(s.value for s in fam.samples if s.name.endswith("_total"))


def traffic(url, models_dir, model, n, out):
    import tritonclient.http as httpclient

    labels, features, quality = load_digits(models_dir)
    client = httpclient.InferenceServerClient(url=url, concurrency=8, network_timeout=60.0)
    wait_ready(client)
    meta = client.get_model_metadata(model)
    check(meta["inputs"][0]["datatype"] == "FP32", f"metadata: {meta}")
    input_name = meta["inputs"][0]["name"]
    pending = []
    for i in range(n):
        sample = i % len(labels)
        x = features[sample : sample + 1]
        # half the requests as JSON tensors, half with the binary tensor extension
        binary = i % 2 == 1
        inp = httpclient.InferInput(input_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
        pending.append((sample, client.async_infer(model, [inp], outputs=outputs, request_id=str(i))))
    answered = {"admitted": 0, "skipped": 0}
    correct, agree, errors = 0, 0, []
    expected = 0.0
    for sample, req in pending:
        try:
            res = req.get_result()
        except Exception as e:  # a 5xx: counted, the test decides
            errors.append(str(e))
            continue
        params = res.get_response()["parameters"]
        decision, by = params["basin_decision"], params["basin_model"]
        answered[decision] += 1
        probs = res.as_numpy("probabilities")
        check(probs.shape[0] == 1 and abs(float(probs.sum()) - 1.0) < 1e-3, f"not probabilities: {probs}")
        right = int(int(np.argmax(probs[0])) == labels[sample])
        correct += right
        want = quality[(by, sample)]
        agree += int(right == want)
        expected += want
    done = answered["admitted"] + answered["skipped"]
    check(not errors, f"{len(errors)} requests failed, first: {errors[:3]}")
    check(done == n, f"{done} answers for {n} requests")
    acc, exp_acc = correct / done, expected / done
    # the models are deterministic: each answer agrees with the quality table's row for the
    # model that gave it (a few rows may flip on float rounding); the accuracy is then within
    # sampling error of the table's
    check(agree >= 0.98 * done, f"only {agree}/{done} answers agree with the quality table")
    sigma = math.sqrt(max(exp_acc * (1 - exp_acc), 1e-4) / done)
    check(abs(acc - exp_acc) <= 3 * sigma + 1e-9, f"accuracy {acc:.4f} vs the table's {exp_acc:.4f} (3σ = {3 * sigma:.4f})")
    check(answered["skipped"] > 0 and answered["admitted"] > 0, f"the cascade should both skip and admit: {answered}")
    fams = scrape(url)
    check(counter_total(fams, "basin_requests") == n, "basin_requests_total != requests sent")
    for name in ["basin_request_latency_seconds", "basin_queue_length", "basin_in_service", "basin_controller_tau",
                 "basin_power_watts", "basin_energy_joules", "basin_co2_grams", "basin_grid_intensity_g_per_kwh"]:
        check(name in fams, f"/metrics has no {name}")
    energy = [s for s in fams["basin_energy_joules"].samples if s.name.endswith("_total")][0]
    check("meter" in energy.labels and "estimated" in energy.labels, f"energy labels: {energy.labels}")
    Path(out).write_text(json.dumps({"sent": n, "answered": answered, "accuracy": acc, "table_accuracy": exp_acc}))
    print(f"serve_client: {n} requests, {answered}, accuracy {acc:.4f} (table {exp_acc:.4f}), {agree}/{done} agree")


def post(url, path, body, headers=None):
    host, port = url.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def bad(url, model):
    good_input = {"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}", timeout=10) as r:
        good_input["name"] = json.load(r)["inputs"][0]["name"]
    cases = [
        ("malformed JSON", f"/v2/models/{model}/infer", b'{"inputs": [', 400),
        ("not an object", f"/v2/models/{model}/infer", b"[1, 2, 3]", 400),
        ("wrong shape", f"/v2/models/{model}/infer", json.dumps({"inputs": [{**good_input, "shape": [1, 63], "data": [0.0] * 63}]}).encode(), 400),
        ("wrong datatype", f"/v2/models/{model}/infer", json.dumps({"inputs": [{**good_input, "datatype": "INT64", "data": [0] * 64}]}).encode(), 400),
        ("unknown model", "/v2/models/no_such_model/infer", json.dumps({"inputs": [good_input]}).encode(), 404),
        ("oversized body", f"/v2/models/{model}/infer", b" " * (2 << 20), 413),
    ]
    for what, path, body, want in cases:
        status, data = post(url, path, body)
        check(status == want, f"{what}: HTTP {status} (wanted {want}): {data[:200]!r}")
        if status != 413:
            check(b"error" in data, f"{what}: no error message: {data[:200]!r}")
        print(f"serve_client: {what}: {status} {data[:120]!r}")
    # a client that goes away halfway through its body
    host, port = url.split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n".encode() + b'{"inputs": [')
    s.close()
    # and one that goes away while its request is in the gateway
    s = socket.create_connection((host, int(port)), timeout=5)
    body = json.dumps({"inputs": [good_input]}).encode()
    s.sendall(f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    s.close()
    time.sleep(0.3)
    status, _ = post(url, f"/v2/models/{model}/infer", json.dumps({"inputs": [good_input]}).encode())
    check(status == 200, f"after the bad requests a good one got HTTP {status}")
    with urllib.request.urlopen(f"http://{url}/v2/health/live", timeout=10) as r:
        check(r.status == 200, "not live after the bad requests")
    print("serve_client: bad requests answered with 4xx; the gateway still serves")


def final(run_dir, least, most):
    from prometheus_client.parser import text_string_to_metric_families

    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    check(summary["mode"] == "serve" and manifest["mode"] == "serve", "mode is not serve")
    for f in ["timeseries.parquet", "requests.parquet"]:
        check((run / f).is_file(), f"{f} missing")
    sent = summary["requests"]
    check(least <= sent <= most, f"summary requests {sent}, not in {least}..{most}")
    check(summary["completed"] + summary["skipped"] == sent, f"answered in summary: {summary}")
    check(summary["failed"] == 0 and summary["rejected"] == 0, f"failures: {summary}")
    fams = {f.name: f for f in text_string_to_metric_families((run / "metrics.prom").read_text())}
    energy = counter_total(fams, "basin_energy_joules")
    check(summary["energy_j"] > 0, "no energy measured")
    check(abs(summary["energy_j"] - energy) <= 1e-6 * max(energy, 1.0), f"summary energy {summary['energy_j']} != metric {energy}")
    check(counter_total(fams, "basin_requests") == sent, "final basin_requests_total != the summary's requests")
    print(f"serve_client: run {run}: {summary['requests']} requests, {summary['energy_j']:.3f} J == metric, co2 {summary['co2_g']:.5f} g")


def burst(url, models_dir, model, n, want):
    labels, features, _ = load_digits(models_dir)
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}", timeout=10) as r:
        name = json.load(r)["inputs"][0]["name"]
    for i in range(n):
        x = features[i % len(labels)]
        body = json.dumps({"inputs": [{"name": name, "shape": [1, len(x)], "datatype": "FP32", "data": x.tolist()}]}).encode()
        status, data = post(url, f"/v2/models/{model}/infer", body)
        check(status == want, f"request {i}: HTTP {status}, wanted {want}: {data[:300]!r}")
        if status != 200:
            check(json.loads(data).get("error"), f"request {i}: HTTP {status} without a reason")
    print(f"serve_client: {n} requests answered HTTP {want}" + ("" if want == 200 else f", e.g. {data[:200]!r}"))


def ready(url, want, seconds):
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=5) as r:
                is_ready = r.status == 200
        except urllib.error.HTTPError as e:
            is_ready = e.code == 200
        except OSError:  # not listening (yet, or any more)
            is_ready = False
        if is_ready == want:
            print(f"serve_client: ready = {want} after {time.time() - t0:.1f} s")
            return
        time.sleep(0.1)
    fail(f"/v2/health/ready did not turn {want} within {seconds} s")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "traffic":
        traffic(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif mode == "bad":
        bad(sys.argv[2], sys.argv[3])
    elif mode == "final":
        final(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "burst":
        burst(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif mode == "ready":
        ready(sys.argv[2], sys.argv[3] == "true", float(sys.argv[4]))
    else:
        fail(f"unknown mode {mode}")
