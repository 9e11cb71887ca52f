"""A process's notes for the latency runs (bench/run/timeline.py)."""

from __future__ import annotations

from bench.run.timeline import Timeline


def test_a_job_keeps_the_first_time_it_passed_a_point() -> None:
    notes = Timeline()
    notes.mark("j1", "claim", 10.0)
    notes.mark("j1", "claim", 12.0)  # taken again after a retry: the first one counts
    assert notes.marks == {"j1": {"claim": 10.0}}


def test_the_notes_read_out_stay_whole_when_the_process_clears_its_own() -> None:
    notes = Timeline()
    notes.mark("j1", "call", 1.0)
    notes.pause("gc", 1.0, 1.5, "gen2")
    read = notes.as_json()
    notes.clear()
    assert read["marks"] == {"j1": {"call": 1.0}}
    assert read["pauses"] == [("gc", 1.0, 1.5, "gen2")]


def test_a_pause_noted_while_the_notes_are_locked_does_not_wait_for_the_lock() -> None:
    # A gc callback can run inside any locked block of the same thread.
    notes = Timeline()
    with notes._guard:
        notes.pause("gc", 1.0, 1.1, "gen0")
    assert notes.as_json()["pauses"] == [("gc", 1.0, 1.1, "gen0")]
