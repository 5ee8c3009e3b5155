#!/usr/bin/env python3
"""Reference M/M/1 queue in SimPy: the model a user would write by hand.

Customers arrive as a Poisson process with rate lambda (exponential inter-arrival times),
queue FIFO for a single server (``simpy.Resource(capacity=1)``) and hold it for an
exponential service time with rate mu. Each customer's sojourn time (waiting + service) goes
into a running mean, so memory stays constant in the number of customers. Theory:
E[T] = 1 / (mu - lambda) for lambda < mu (Kleinrock, Queueing Systems Vol. 1, 1975, §3.2).

It serves as a correctness and speed baseline for basin's event engine:

    .venv/bin/python scripts/simpy_mm1.py --lambda-rps 0.9 --mu-rps 1 --requests 1000000

prints one JSON line; ``wall_s`` covers ``env.run()`` only (not imports or setup).
"""

import argparse
import json
import random
import time

import simpy


class RunningMean:
    """Count and mean of a stream of values, updated in place (Welford)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0

    def add(self, x: float) -> None:
        self.count += 1
        self.mean += (x - self.mean) / self.count


def customer(env, server, rng, mu, sojourn):
    arrival = env.now
    with server.request() as req:
        yield req
        yield env.timeout(rng.expovariate(mu))
    sojourn.add(env.now - arrival)


def source(env, server, rng, lam, mu, n, sojourn):
    for _ in range(n):
        env.process(customer(env, server, rng, mu, sojourn))
        yield env.timeout(rng.expovariate(lam))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lambda-rps", type=float, default=0.5, help="arrival rate (1/s)")
    ap.add_argument("--mu-rps", type=float, default=1.0, help="service rate (1/s)")
    ap.add_argument("--requests", type=int, default=200_000, help="customers to simulate")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.lambda_rps <= 0 or args.mu_rps <= 0 or args.requests <= 0:
        ap.error("--lambda-rps, --mu-rps and --requests must be positive")

    rng = random.Random(args.seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    sojourn = RunningMean()
    env.process(source(env, server, rng, args.lambda_rps, args.mu_rps, args.requests, sojourn))

    t0 = time.perf_counter()
    env.run()  # until the event queue is empty: every customer has left
    wall_s = time.perf_counter() - t0

    stable = args.lambda_rps < args.mu_rps
    print(json.dumps({
        "requests": sojourn.count,
        "lambda_rps": args.lambda_rps,
        "mu_rps": args.mu_rps,
        "seed": args.seed,
        "mean_sojourn_s": sojourn.mean,
        "theory_s": 1.0 / (args.mu_rps - args.lambda_rps) if stable else None,
        "wall_s": wall_s,
        "requests_per_s": sojourn.count / wall_s,
        "simpy_version": simpy.__version__,
    }))


if __name__ == "__main__":
    main()
