"""Helpers shared by the generated Triton Python-backend models (scripts/triton_repo.py copies
this file beside each model.py): the batch log, the controlled service time, and the small
model-config readers. Kept free of Triton imports so that it can be tested on its own."""

from __future__ import annotations

import os
import re
import time

import numpy as np

BATCH_LOG_HEADER = "size,start_ns,end_ns\n"


def parameter(model_config: dict, key: str, default: str | None = None) -> str | None:
    """A string parameter of config.pbtxt (`parameters { key: ... value { string_value: ... } }`)."""
    value = model_config.get("parameters", {}).get(key, {}).get("string_value")
    return default if value in (None, "") else value


def safe_file_part(name: str) -> str:
    """`name` with everything but letters, digits and underscores replaced by underscores."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def instance_index(instance_name: str) -> int:
    """The index Triton appends to an instance name (`digits_large_0_1` -> 1)."""
    m = re.search(r"_(\d+)$", instance_name)
    if m is None:
        raise ValueError(f"model instance name {instance_name!r} does not end in _<index>")
    return int(m.group(1))


class BatchLog:
    """Appends `size,start_ns,end_ns` (CLOCK_MONOTONIC, like Rust's Instant on Linux) for every
    executed batch to DIR/<model>.<instance>.csv, flushed per batch so that a reader sees each
    batch while Triton still runs. Disabled (no file) when the config has no batch_log_dir."""

    def __init__(self, model_config: dict, model_name: str, instance_name: str):
        self.file = None
        directory = parameter(model_config, "batch_log_dir")
        if directory is None:
            return
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{safe_file_part(model_name)}.{safe_file_part(instance_name)}.csv")
        self.file = open(path, "a", encoding="ascii")
        if self.file.tell() == 0:
            self.file.write(BATCH_LOG_HEADER)
            self.file.flush()

    def record(self, size: int, start_ns: int, end_ns: int) -> None:
        if self.file is not None:
            self.file.write(f"{size},{start_ns},{end_ns}\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def inverse_cdf(knots: list[list[float]], u: float) -> float:
    """Piecewise-linear inverse CDF through (probability, seconds) knots sorted by probability,
    constant below the first and above the last knot (src/model/cost.rs interpolate_inverse_cdf)."""
    p_first, v_first = knots[0]
    if u <= p_first:
        return v_first
    for (p0, v0), (p1, v1) in zip(knots, knots[1:]):
        if u <= p1:
            return v0 + (v1 - v0) * (u - p0) / (p1 - p0)
    return knots[-1][1]


class ServiceTime:
    """Draws a batch's service time (seconds) from the cost-table row of its size, on one seeded
    stream per model instance. Deterministic rows draw nothing, as in basin's simulator, so a
    deterministic size never shifts the stream of the others."""

    def __init__(self, service: list[dict], seed: int):
        self.rows = {row["batch_size"]: row for row in service}
        self.rng = np.random.default_rng(seed)

    def draw_s(self, batch_size: int) -> float:
        row = self.rows[batch_size]
        kind = row["kind"]
        if kind == "deterministic":
            return row["latency_s"]
        if kind == "exponential":
            return float(self.rng.exponential(row["mean_s"]))
        if kind == "quantiles":
            return inverse_cdf(row["knots"], float(self.rng.random()))
        if kind == "samples":
            samples = row["samples_s"]
            return samples[int(self.rng.integers(len(samples)))]
        raise ValueError(f"unknown service kind {kind!r}")


def hold_until(deadline_ns: int, spin_ns: int) -> None:
    """Sleeps until `spin_ns` before the deadline, then busy-waits to it (a sleep alone
    overshoots by the scheduler's wake-up latency)."""
    remaining = deadline_ns - spin_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)
    while time.monotonic_ns() < deadline_ns:
        pass
