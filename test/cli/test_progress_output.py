"""Progress of a fine-tuning job: one line per few percent in a log, only going up; a live bar on a terminal."""

import io
import re

from rlvla_ros.cli.finetune import ProgressBar
from rlvla_ros.msg import FineTuneStatus, Metric
from rlvla_ros.ros.commander import _newer


def status(step, total=120, state=FineTuneStatus.STATE_RUNNING, elapsed_s=None):
    return FineTuneStatus(job_id="job-1", state=state, algorithm="ppo", step=step, total_steps=total,
                          progress=step / total, elapsed_s=float(step if elapsed_s is None else elapsed_s),
                          metrics=[Metric(name="loss", value=1.0 / (step + 1))])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_in_a_log_the_progress_is_one_line_per_five_percent_and_only_goes_up():
    log = io.StringIO()
    bar = ProgressBar(stream=log)
    for step in range(121):
        bar(status(step))
        bar(status(max(step - 3, 0)))  # an older status arriving late must not move the printed progress back
    bar(status(120, state=FineTuneStatus.STATE_SUCCEEDED))
    lines = log.getvalue().splitlines()
    percents = [int(re.match(r"ppo:\s+(\d+) %", line).group(1)) for line in lines]
    assert percents == sorted(set(percents)) and percents[0] == 0 and percents[-1] == 100
    assert len(lines) <= 21 and "\r" not in log.getvalue()
    assert "(step 60/120" in lines[percents.index(50)]


def test_a_job_that_fails_early_still_gets_its_last_line():
    log = io.StringIO()
    bar = ProgressBar(stream=log)
    bar(status(10))
    bar(status(11, state=FineTuneStatus.STATE_FAILED))
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == ["ppo:   8 %", "ppo:   9 %"]


def test_on_a_terminal_the_bar_is_redrawn_in_place():
    terminal = Terminal()
    bar = ProgressBar(stream=terminal)
    for step in (0, 60, 120):
        bar(status(step, state=FineTuneStatus.STATE_SUCCEEDED if step == 120 else FineTuneStatus.STATE_RUNNING))
    assert "\r" in terminal.getvalue() and "120/120" in terminal.getvalue()


def test_the_client_keeps_the_later_of_a_streamed_and_a_polled_status():
    # The last streamed message stays the latest one received while each poll answers with the job's state now:
    # taking whichever came last moved progress back and forth.
    polled, streamed = status(50, elapsed_s=200.0), status(49, elapsed_s=199.0)
    assert _newer(polled, streamed) is polled and _newer(streamed, polled) is polled
    finished = status(50, state=FineTuneStatus.STATE_SUCCEEDED, elapsed_s=199.5)
    assert _newer(polled, finished) is finished  # the final status wins whatever its clock says
