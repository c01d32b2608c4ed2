"""The fault lane's own logic, without a system: the schedule, the checker's bookkeeping, the
synthetic people."""

from __future__ import annotations

from collections import Counter

import pytest
from fault_checker import Findings, fault_answers
from fault_injector import FULL, KINDS, SHORT, Injection, Nemesis
from fault_people import people, roster_csv, sandbox_seed
from fault_workload import Answer, Recorder

from sandboxes.seed import is_valid_id_number, load_seed

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("profile", [SHORT, FULL], ids=["short", "full"])
def test_every_kind_is_scheduled_often_enough_and_the_schedule_is_the_seeds(profile) -> None:
    nemesis = Nemesis(target=None, profile=profile, seed=7)  # type: ignore[arg-type]
    kinds = nemesis.schedule()
    assert len(kinds) >= profile.injections
    counts = Counter(kinds)
    assert set(counts) == set(KINDS)
    assert min(counts.values()) >= profile.min_each
    assert kinds == Nemesis(target=None, profile=profile, seed=7).schedule()  # type: ignore[arg-type]
    assert kinds != Nemesis(target=None, profile=profile, seed=8).schedule()  # type: ignore[arg-type]


def test_the_issue_asks_for_100_injections_per_full_run_and_30_in_make_test() -> None:
    assert FULL.injections >= 100 and FULL.min_each >= 5
    assert SHORT.injections >= 30 and SHORT.min_each >= 1
    assert FULL.partition_seconds == 30.0
    assert FULL.s3_seconds[0] >= 10.0  # "stopped for tens of seconds"


def test_answers_are_attributed_to_the_fault_they_came_during() -> None:
    recorder = Recorder()
    recorder.answers = [
        Answer(1.0, "identity", "captcha", 200),
        Answer(5.0, "application", "draft", 503),
        Answer(6.0, "application", "draft", None, "ConnectError"),
        Answer(9.5, "application", "draft", 201),  # during recovery: still counted
        Answer(20.0, "media", "photo", 500),  # outside every fault, still a 500
    ]
    injection = Injection(1, "pg_restart", "postgres", started=4.0, ended=8.0, recovered=2.0)
    findings = Findings()
    fault_answers(findings, recorder, [injection])
    assert findings.answers_during["pg_restart"] == Counter({"503": 1, "no answer": 1, "201": 1})
    assert findings.answers_500 == 1
    assert findings.injections["pg_restart"] == 1
    assert any("500 answers: 1" in f for f in findings.failures())


def test_a_clean_run_has_no_failures_and_a_slow_recovery_is_one() -> None:
    findings = Findings(recovery={"api_kill": [3.0, 4.5]})
    assert findings.failures() == []
    findings.recovery["s3_stop"] = [31.0]
    findings.recovery["net_partition"] = [None]
    [slow] = findings.failures()
    assert "s3_stop" in slow and "net_partition" in slow
    assert "| api_kill | 0 | 3.8 | 4.5 |" in findings.table()


def test_synthetic_people_are_valid_distinct_and_shaped_like_the_packaged_seeds() -> None:
    persons = people(400, 3)
    assert all(is_valid_id_number(p.id_number) for p in persons)
    for attribute in ("id_number", "ticket", "mobile", "certificate", "record_id"):
        values = [getattr(p, attribute) for p in persons]
        assert len(set(values)) == len(values), attribute
    assert people(5, 3) == persons[:5]
    seed = sandbox_seed(persons[:2])
    packaged_person = load_seed("chsi_seed.json")["people"][0]
    packaged_certificate = load_seed("neea_seed.json")["certificates"][0]
    assert set(seed["chsi"]["people"][0]) == set(packaged_person)  # type: ignore[index]
    assert set(seed["chsi"]["people"][0]["records"][0]) == set(packaged_person["records"][0])  # type: ignore[index]
    assert set(seed["neea"]["certificates"][0]) == set(packaged_certificate)  # type: ignore[index]
    lines = roster_csv(persons[:2]).splitlines()
    assert len(lines) == 3 and lines[1].split(",")[1] == persons[0].id_number
