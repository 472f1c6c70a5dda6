"""Scheduling policies, by name: each is a setting of the one shared machinery in schedule.core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from suanli.errors import Problem, SpecError

Choice = Literal["first", "least-loaded", "completion", "objective", "cost", "carbon"]


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    order: Literal["submit", "priority"]  # submit: strict arrival order; priority: priority, then arrival
    choose: Choice  # how the pool (and start) is picked among those that fit
    blocking: bool = False  # the first job that cannot start blocks the ones behind it (FIFO)
    reserve_depth: int = 0  # how many jobs per round may hold a reservation for a later start
    wait_for_faster: bool = False  # reserve a busy but faster pool when it finishes the job sooner
    time_shift: bool = False  # deferrable jobs may start later, in cheaper or greener hours
    preemption: bool = False  # higher priority may preempt running preemptible jobs
    fair_share: bool = False  # max-min fair shares across tenants from an LP
    speed_aware: bool = True  # False: plan as if every pool ran the job at the same speed
    shift_step_s: float = 3600.0
    max_shift_points: int = 48


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy(
            "fifo", "first come, first fit; the queue head blocks the rest (baseline)", "submit", "first", blocking=True
        ),
        Policy(
            "easy-backfill",
            "Slurm-style: a reservation for the queue head, later jobs backfill where they do not delay it (baseline)",
            "submit",
            "first",
            reserve_depth=1,
        ),
        Policy(
            "agnostic",
            "heterogeneity-agnostic: every pool runs a job at the same speed; least-loaded fit "
            "(the literature's baseline)",
            "priority",
            "least-loaded",
            speed_aware=False,
        ),
        Policy(
            "hetero",
            "heterogeneity-aware greedy on estimated completion (wait + staging + runtime)",
            "priority",
            "completion",
            reserve_depth=256,
            wait_for_faster=True,
            preemption=True,
        ),
        Policy(
            "fair",
            "heterogeneity-aware max-min fairness of effective throughput across tenants (LP, HiGHS)",
            "priority",
            "completion",
            reserve_depth=256,
            wait_for_faster=True,
            preemption=True,
            fair_share=True,
        ),
        Policy(
            "cost",
            "minimise money subject to deadlines, shifting deferrable work to cheaper hours and sites",
            "priority",
            "cost",
            reserve_depth=1024,
            time_shift=True,
            preemption=True,
        ),
        Policy(
            "carbon",
            "minimise emissions subject to deadlines, shifting deferrable work to greener hours and sites",
            "priority",
            "carbon",
            reserve_depth=1024,
            time_shift=True,
            preemption=True,
        ),
        Policy(
            "objective",
            "each job's own objective (fastest, cheapest, greenest, balanced), with time shifting for deferrable work",
            "priority",
            "objective",
            reserve_depth=1024,
            wait_for_faster=True,
            time_shift=True,
            preemption=True,
        ),
    )
}

DEFAULT_POLICY = "objective"


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise SpecError(
            [Problem(f"unknown policy {name!r}", "policy", accepted=", ".join(POLICIES))], kind="option"
        ) from None
