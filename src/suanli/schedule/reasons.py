"""Why a job cannot go to a pool, as bits (cheap to compute for millions of pairs) and as sentences."""

from __future__ import annotations

from enum import IntFlag


class Reason(IntFlag):
    NEEDS_ACCELERATOR = 1 << 0
    CPU_ONLY_JOB = 1 << 1
    NODES = 1 << 2
    DEVICES_PER_NODE = 1 << 3
    DEVICE_MEMORY = 1 << 4
    CPUS_PER_NODE = 1 << 5
    MEMORY_PER_NODE = 1 << 6
    PRECISION = 1 << 7
    SITE_CONSTRAINT = 1 << 8
    HARDWARE_CONSTRAINT = 1 << 9
    DEADLINE = 1 << 10
    BUDGET = 1 << 11
    NO_CAPACITY = 1 << 12  # feasible, but no room now (or in time) with what is running and reserved


PLAIN: dict[Reason, str] = {
    Reason.NEEDS_ACCELERATOR: "needs accelerators; the pool has only CPUs",
    Reason.CPU_ONLY_JOB: "CPU-only job; the pool is an accelerator pool",
    Reason.NODES: "needs more nodes than the pool has",
    Reason.DEVICES_PER_NODE: "needs more devices per node than the pool's nodes have",
    Reason.DEVICE_MEMORY: "needs more memory per device than the hardware has",
    Reason.CPUS_PER_NODE: "needs more CPUs per node than the pool's nodes have",
    Reason.MEMORY_PER_NODE: "needs more memory per node than the pool's nodes have",
    Reason.PRECISION: "the hardware has no path for a precision of the work",
    Reason.SITE_CONSTRAINT: "the site is ruled out by the job's constraints or data residency",
    Reason.HARDWARE_CONSTRAINT: "the hardware is ruled out by the job's constraints",
    Reason.DEADLINE: "cannot finish before the deadline",
    Reason.BUDGET: "costs more than the budget",
    Reason.NO_CAPACITY: "no free capacity in time",
}


def describe(bits: int) -> list[str]:
    return [text for flag, text in PLAIN.items() if bits & flag]
