"""`rlvla demo --quick`: every stage of the main job runs through the graph and writes what users look at."""

import json
import os
import pathlib
import subprocess
import sys

from rlvla_ros.data import dataset_info

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_quick_demo_runs_every_stage_and_ends_with_the_results_as_json(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "rlvla_ros.cli", "demo", "--quick", "--output-dir", str(out)],
                            cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    table = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(table) == {"bc", "rl", "rl_steering", "rl_minus_bc", "steering_minus_rl"}
    for name in ("bc", "rl", "rl_steering"):
        row = table[name]
        assert set(row) == {"id", "ood", "episodes", "id_ci95", "ood_ci95"} and row["episodes"] == 2
        assert row["id_ci95"][0] <= row["id"] <= row["id_ci95"][1]
    assert table["rl_minus_bc"]["id"] == round(table["rl"]["id"] - table["bc"]["id"], 3)
    # The RL job ran the recipe's iteration count (demo_quick: 2), not a time budget.
    assert "ppo: 100 % (step 2/2" in result.stderr
    for stage in ("record expert demonstrations through the graph", "behaviour cloning through the learner service",
                  "online RL (ppo) through the learner service", "evaluate RL with test-time steering"):
        assert f"[demo] {stage}: done" in result.stdout

    # The expert's demonstrations went through the graph into a bag a standard reader opens.
    info = dataset_info(next((out / "bags" / "expert").iterdir()))
    assert info["episodes"] == 2 and info["successes"] == 2
    # The BC policy's own episode on the graph was recorded too.
    assert dataset_info(next((out / "bags" / "policy").iterdir()))["episodes"] == 1
    for curve in ("bc", "ppo", "value"):
        assert (out / f"{curve}_learning_curve.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert results["graph_bc_episodes"]["episodes"] == 1
