#!/usr/bin/env python3
"""Reference dynamic batcher in SimPy: the batching model a user would write by hand.

The workload is a rate trace (requests per second for consecutive 1-second steps, scaled by
--rate-scale); inside each second arrivals are a Poisson process of that rate. Requests queue
FIFO for one model instance. The instance starts a batch when it is free and either
--max-batch requests wait or the oldest has waited --max-queue-delay-us (then it takes all
that wait, up to --max-batch); a batch of b requests holds the instance for
--base-ms + --per-request-ms * b. Each request's latency (arrival to its batch's end) goes into
a running mean, so memory stays constant in the number of requests.

It is the same model as basin's dynamic batcher with a fixed-latency cost table, and serves as
the speed baseline of ``basin bench speed --simpy`` (whole processes, the same workload):

    .venv/bin/python scripts/simpy_batcher.py --trace traces/twitter/bursty.csv --rate-scale 100

prints one JSON line (requests, mean latency, mean batch size; ``wall_s`` covers ``env.run()``).
"""

import argparse
import csv
import json
import random
import time
from collections import deque

import simpy


class RunningMean:
    """Count and mean of a stream of values, updated in place."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0

    def add(self, x: float) -> None:
        self.count += 1
        self.mean += (x - self.mean) / self.count


class Batcher:
    """A FIFO queue and one instance that serves it in batches."""

    def __init__(self, env, max_batch, delay_s, base_s, per_request_s):
        self.env = env
        self.max_batch = max_batch
        self.delay_s = delay_s
        self.base_s = base_s
        self.per_request_s = per_request_s
        self.queue = deque()
        self.wakeup = env.event()
        self.latency = RunningMean()
        self.batch_size = RunningMean()

    def arrive(self) -> None:
        self.queue.append(self.env.now)
        if not self.wakeup.triggered:
            self.wakeup.succeed()

    def run(self):
        env = self.env
        while True:
            if not self.queue:
                self.wakeup = env.event()
                yield self.wakeup
                continue
            deadline = self.queue[0] + self.delay_s
            if len(self.queue) < self.max_batch and env.now < deadline:
                # wait for the delay to expire or for another arrival, then look again
                self.wakeup = env.event()
                yield self.wakeup | env.timeout(deadline - env.now)
                continue
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.max_batch))]
            self.batch_size.add(len(batch))
            yield env.timeout(self.base_s + self.per_request_s * len(batch))
            for arrival in batch:
                self.latency.add(env.now - arrival)


def source(env, rates, batcher, rng):
    for second, rate in enumerate(rates):
        if rate <= 0:
            continue
        offset = rng.expovariate(rate)
        while offset < 1.0:
            yield env.timeout(second + offset - env.now)
            batcher.arrive()
            offset += rng.expovariate(rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", required=True, help="rate CSV (second,rate)")
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--duration-s", type=int, default=None, help="use only the trace's first seconds")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-queue-delay-us", type=float, default=2000.0)
    ap.add_argument("--base-ms", type=float, default=0.6)
    ap.add_argument("--per-request-ms", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.rate_scale <= 0 or args.max_batch <= 0 or args.max_queue_delay_us < 0:
        ap.error("--rate-scale and --max-batch must be positive, --max-queue-delay-us not negative")
    with open(args.trace, newline="") as f:
        rates = [float(row["rate"]) * args.rate_scale for row in csv.DictReader(f)]
    if args.duration_s is not None:
        rates = rates[: args.duration_s]

    env = simpy.Environment()
    batcher = Batcher(env, args.max_batch, args.max_queue_delay_us * 1e-6, args.base_ms * 1e-3, args.per_request_ms * 1e-3)
    env.process(source(env, rates, batcher, random.Random(args.seed)))
    env.process(batcher.run())
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    n = batcher.latency.count
    print(
        json.dumps(
            {
                "model": "dynamic batcher",
                "simpy_version": simpy.__version__,
                "requests": n,
                "latency_mean_ms": batcher.latency.mean * 1e3,
                "mean_batch_size": batcher.batch_size.mean,
                "wall_s": wall,
                "requests_per_s": n / wall if wall > 0 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
