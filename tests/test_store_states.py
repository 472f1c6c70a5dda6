"""The job lifecycle: every edge of the state machine, every edge it lacks, and transitions through the store
(each writes its event in the same transaction, and an illegal one rolls both back)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from suanli.spec.job import JobSpec
from suanli.store.db import Store
from suanli.store.jobs import events_of, submit_job, transition
from suanli.store.models import Event, Job
from suanli.store.states import ACTIVE, ALLOWED, TERMINAL, IllegalTransition, JobState, check_transition
from suanli.store.tenants import create_tenant

STATES = list(JobState)
ALLOWED_PAIRS = [(a, b) for a in STATES for b in sorted(ALLOWED[a])]
FORBIDDEN_PAIRS = [(a, b) for a, b in itertools.product(STATES, STATES) if b not in ALLOWED[a]]


def test_every_state_has_its_edges() -> None:
    assert set(ALLOWED) == set(STATES)
    assert len(ALLOWED_PAIRS) + len(FORBIDDEN_PAIRS) == len(STATES) ** 2


@pytest.mark.parametrize(("current", "wanted"), ALLOWED_PAIRS, ids=[f"{a}->{b}" for a, b in ALLOWED_PAIRS])
def test_allowed_transition_passes(current: JobState, wanted: JobState) -> None:
    check_transition("j_1", current.value, wanted.value)
    check_transition("j_1", current, wanted)  # the enum members are the strings themselves


@pytest.mark.parametrize(("current", "wanted"), FORBIDDEN_PAIRS, ids=[f"{a}->{b}" for a, b in FORBIDDEN_PAIRS])
def test_other_transition_raises_naming_both_states_and_the_allowed_ones(current: JobState, wanted: JobState) -> None:
    with pytest.raises(IllegalTransition) as exc:
        check_transition("j_1", current.value, wanted.value)
    message = str(exc.value)
    assert "j_1" in message
    assert f"{current.value} -> {wanted.value}" in message
    allowed = ALLOWED[current]
    if allowed:
        listed = message.rsplit(": ", 1)[1]
        assert set(listed.split(", ")) == {s.value for s in allowed}
    else:
        assert "none (terminal)" in message


def test_terminal_states_allow_nothing() -> None:
    assert {s for s in STATES if not ALLOWED[s]} == TERMINAL
    for state in TERMINAL:
        for wanted in STATES:
            with pytest.raises(IllegalTransition):
                check_transition("j", state.value, wanted.value)


def test_no_state_moves_to_itself_and_active_states_are_not_terminal() -> None:
    for state in STATES:
        assert state not in ALLOWED[state]
    assert not ACTIVE & TERMINAL


def test_every_state_is_reachable_from_queued_and_every_state_can_end() -> None:
    def reach(start: JobState) -> set[JobState]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in ALLOWED[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reach(JobState.QUEUED) == set(STATES)
    for state in STATES:
        assert reach(state) & TERMINAL, state
        if state not in TERMINAL:
            assert JobState.CANCELLED in ALLOWED[state], f"a {state} job cannot be cancelled"


def test_unknown_state_is_an_error() -> None:
    with pytest.raises(ValueError):
        check_transition("j", "queued", "sleeping")
    with pytest.raises(ValueError):
        check_transition("j", "sleeping", "queued")


# -- through the store ---------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'states.db'}")
    try:
        yield s
    finally:
        s.close()


def _new_job(store: Store) -> str:
    spec = JobSpec.model_validate({"name": "lifecycle", "compute": {"walltime_h": 1}})
    with store.tx() as s:
        tenant = create_tenant(s, "t")
        job, created = submit_job(s, tenant.id, spec, None, datetime.now(UTC))
        assert created
        return job.id


def _state_events(store: Store, job_id: str) -> list[tuple[str, str | None, str | None]]:
    with store.tx() as s:
        return [(e.kind, e.from_state, e.to_state) for e in events_of(s, job_id)]


def test_submit_writes_a_submitted_event(store: Store) -> None:
    job_id = _new_job(store)
    assert _state_events(store, job_id) == [("submitted", None, "queued")]


def test_transition_writes_its_event(store: Store) -> None:
    job_id = _new_job(store)
    with store.tx() as s:
        job = s.get(Job, job_id)
        before = job.updated_at
        transition(s, job, JobState.PLACED, None, {"site": "x", "pool": "y"})
        transition(s, job, JobState.STARTING)
        transition(s, job, JobState.RUNNING)
        transition(s, job, JobState.FAILED, "exit code 3")
    with store.tx() as s:
        job = s.get(Job, job_id)
        assert job.state == "failed"
        assert job.reason == "exit code 3"
        assert job.updated_at >= before
        events = list(s.scalars(select(Event).where(Event.job_id == job_id, Event.kind == "state").order_by(Event.id)))
    assert [(e.from_state, e.to_state) for e in events] == [
        ("queued", "placed"),
        ("placed", "starting"),
        ("starting", "running"),
        ("running", "failed"),
    ]
    assert '"site": "x"' in events[0].data
    assert events[1].data is None  # nothing to say: no reason, no data
    assert '"reason": "exit code 3"' in events[3].data


def test_illegal_transition_rolls_back_the_state_and_the_event(store: Store) -> None:
    job_id = _new_job(store)
    with pytest.raises(IllegalTransition, match="placed -> running"), store.tx() as s:
        job = s.get(Job, job_id)
        transition(s, job, JobState.PLACED)  # legal, written in this transaction ...
        transition(s, job, JobState.RUNNING)  # ... and this one is not: the whole transaction goes
    with store.tx() as s:
        assert s.get(Job, job_id).state == "queued"
    assert _state_events(store, job_id) == [("submitted", None, "queued")]


def test_illegal_transition_from_a_terminal_state_changes_nothing(store: Store) -> None:
    job_id = _new_job(store)
    with store.tx() as s:
        transition(s, s.get(Job, job_id), JobState.CANCELLED, "cancelled by the tenant")
    with pytest.raises(IllegalTransition, match="none \\(terminal\\)"), store.tx() as s:
        job = s.get(Job, job_id)
        transition(s, job, JobState.QUEUED)
    with store.tx() as s:
        job = s.get(Job, job_id)
        assert (job.state, job.reason) == ("cancelled", "cancelled by the tenant")
    assert _state_events(store, job_id) == [("submitted", None, "queued"), ("state", "queued", "cancelled")]
