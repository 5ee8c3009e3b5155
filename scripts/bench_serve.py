"""Open-loop load generator for `basin serve` (scripts/bench-serve.sh): RATE requests/s of one
digits sample for SECONDS, spread over THREADS persistent HTTP/1.1 connections, each request
sent at its scheduled time (a late send counts in its latency: no coordinated omission).

    bench_serve.py URL MODEL RATE SECONDS THREADS

Prints one JSON line: sent, errors, achieved rate, client latency percentiles, the backend time
the gateway reports (basin_backend_us) and the gateway's own added latency (client latency −
backend time) percentiles, all in ms, and the server-side overhead histogram's p99 bucket.
"""

import http.client
import json
import sys
import threading
import time
import urllib.request

import numpy as np


def main(url, model, rate, seconds, threads):
    host, port = url.split(":")
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}", timeout=10) as r:
        spec = json.load(r)["inputs"][0]
    dim = spec["shape"][-1]
    body = json.dumps({"inputs": [{"name": spec["name"], "shape": [1, dim], "datatype": "FP32", "data": [0.5] * dim}]}).encode()
    headers = {"Content-Type": "application/json"}
    n = int(rate * seconds)
    latency = np.zeros(n)
    backend = np.zeros(n)
    status = np.zeros(n, dtype=int)
    start = time.perf_counter() + 0.5

    def worker(k):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for i in range(k, n, threads):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status[i] = resp.status
                if resp.status == 200:
                    backend[i] = json.loads(data)["parameters"]["basin_backend_us"] / 1e3
            except (OSError, http.client.HTTPException):
                status[i] = -1
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            latency[i] = (time.perf_counter() - due) * 1e3

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    ok = status == 200
    added = latency[ok] - backend[ok]
    pct = lambda a, q: round(float(np.percentile(a, q)), 3) if len(a) else None
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    print(json.dumps({
        "sent": n,
        "errors": int((~ok).sum()),
        "achieved_rps": round(n / wall, 1),
        "latency_ms": {"p50": pct(latency, 50), "p99": pct(latency, 99), "max": pct(latency, 100)},
        "backend_ms": {"p50": pct(backend[ok], 50), "p99": pct(backend[ok], 99)},
        "added_ms": {"p50": pct(added, 50), "p99": pct(added, 99), "max": pct(added, 100)},
        "server_overhead_p99_le_s": server_p99_bucket(text),
    }))


def server_p99_bucket(text):
    """The smallest bucket bound of basin_gateway_overhead_seconds holding 99% of the answers."""
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        if fam.name == "basin_gateway_overhead_seconds":
            buckets = [(float(s.labels["le"]), s.value) for s in fam.samples if s.name.endswith("_bucket")]
            total = buckets[-1][1]
            return next((le for le, c in sorted(buckets) if c >= 0.99 * total), None)
    return None


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
