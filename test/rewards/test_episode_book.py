"""Episode bookkeeping: the task/split/seed schedule, termination rules and success statistics."""

import json

import pytest

from rlvla_ros.rewards.episode_book import EpisodeSchedule, ScheduledEpisode, RunningEpisode, SuccessStats


def test_schedule_cycles_tasks_then_splits_and_moves_the_seed_after_each_cycle():
    schedule = EpisodeSchedule(["lift", "push"], ["id", "ood_color"], [50, 80], base_seed=7)
    got = [(s.task, s.split, s.seed, s.max_steps) for s in (schedule[i] for i in range(5))]
    assert got == [("lift", "id", 7, 50), ("push", "id", 7, 80), ("lift", "ood_color", 7, 50),
                   ("push", "ood_color", 7, 80), ("lift", "id", 8, 50)]


def test_schedule_takes_one_max_steps_for_every_task():
    schedule = EpisodeSchedule(["lift", "push", "stack"], ["id"], [30])
    assert [schedule[i].max_steps for i in range(3)] == [30, 30, 30]


@pytest.mark.parametrize("kwargs", [dict(tasks=[]), dict(splits=[]), dict(max_steps=[10, 20, 30]),
                                    dict(max_steps=[0])])


def test_schedule_refuses_bad_input(kwargs):
    args = dict(tasks=["lift", "push"], splits=["id"], max_steps=[50]) | kwargs
    with pytest.raises(ValueError):
        EpisodeSchedule(**args)


def episode(max_steps=5, **kwargs) -> RunningEpisode:
    return RunningEpisode("ep1", ScheduledEpisode(0, "lift", "id", 3, max_steps), "lift the red block", **kwargs)


def test_success_reward_ends_the_episode_with_its_step_plus_one_as_length():
    running = episode()
    assert running.on_reward(0, 0.0, False) == ""
    assert running.on_reward(1, 1.0, True) == "success"
    assert (running.steps, running.success, running.episode_return) == (2, True, 1.0)
    assert running.on_reward(2, 1.0, True) == ""  # after the end nothing counts
    assert running.episode_return == 1.0


def test_timeout_after_the_reward_of_the_last_allowed_step_and_duplicates_count_once():
    running = episode(max_steps=3)
    assert [running.on_reward(s, 0.5, False) for s in (0, 0, 1)] == ["", "", ""]
    assert running.on_reward(2, 0.5, False) == "timeout"
    assert (running.steps, running.episode_return, running.success) == (3, 1.5, False)


def test_a_reward_that_skips_steps_stalls_the_episode():
    # Rewards come in step order: a gap means rewards were lost (a loaded demo's reward node fell behind the
    # lock-step graph and skipped steps 0 and 1 of one episode, which the dataset then dropped)
    running = episode(max_steps=10)
    assert [running.on_reward(s, 0.5, False) for s in (0, 1)] == ["", ""]
    assert running.on_reward(3, 0.5, True) == "stalled"
    assert (running.steps, running.success) == (2, False)
    first_lost = episode(max_steps=10)
    assert first_lost.on_reward(1, 0.5, False) == "stalled"


def test_a_reward_past_the_last_step_before_the_last_steps_own_stalls_the_episode():
    # The graph runs on until the END; with the last step's reward lost, each later reward was progress, and the
    # episode never ended (a loaded end-to-end run stepped one 12-step episode 8000 times)
    running = episode(max_steps=3)
    assert [running.on_reward(s, 0.5, False) for s in (0, 1)] == ["", ""]
    assert running.on_reward(3, 0.5, False) == "stalled"
    assert running.on_reward(2, 0.5, False) == "" and running.termination_reason == "stalled"
    ended = episode(max_steps=3)
    assert [ended.on_reward(s, 0.5, False) for s in (0, 1, 2, 3)] == ["", "", "timeout", ""]


def test_interventions_are_counted_and_end_the_episode_only_when_configured():
    keeps_going = episode()
    assert keeps_going.on_intervention(2) == "" and keeps_going.on_intervention(1) == ""
    assert keeps_going.intervention_steps == 3 and not keeps_going.ended
    ends = episode(end_on_intervention=True)
    assert ends.on_intervention(1) == "intervention" and ends.intervention_steps == 1


def test_abort_ends_once():
    running = episode()
    assert running.abort() == "abort" and running.abort() == ""
    assert running.termination_reason == "abort"


def test_stalled_episodes_count_only_among_the_terminations():
    stats = SuccessStats()
    stalled = episode()
    stalled.on_reward(0, 0.0, False)
    assert stalled.stall() == "stalled" and stalled.stall() == "" and stalled.abort() == ""
    finished = episode()
    finished.on_reward(0, 1.0, True)
    for running in (stalled, finished):
        stats.add(running)
    summary = stats.as_dict()
    assert (summary["episodes"], summary["successes"], summary["success_rate"]) == (1, 1, 1.0)
    assert summary["terminations"] == {"stalled": 1, "success": 1}


def test_stats_count_success_rates_per_task_and_split():
    stats = SuccessStats()
    for task, split, success in [("lift", "id", True), ("lift", "id", False), ("push", "ood_color", True)]:
        running = RunningEpisode(f"{task}{split}", ScheduledEpisode(0, task, split, 0, 5), "x")
        running.on_reward(0, float(success), success) if success else running.abort()
        stats.add(running)
    summary = json.loads(stats.to_json())
    assert (summary["episodes"], summary["successes"]) == (3, 2)
    assert summary["by_task_split"]["lift/id"] == {"episodes": 2, "successes": 1, "success_rate": 0.5}
    assert summary["by_split"]["ood_color"]["success_rate"] == 1.0
    assert summary["by_task"]["lift"]["episodes"] == 2
    assert summary["terminations"] == {"success": 2, "abort": 1}
