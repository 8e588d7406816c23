"""OpenMP waits passively unless the user says otherwise (spinning threads crawl on a shared CPU)."""
import os
import subprocess
import sys


def _policy(module: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    code = f"import os, {module}; print(os.environ.get('OMP_WAIT_POLICY'))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout.strip()


def test_tracker_and_backbones_set_passive_waiting_but_keep_a_users_choice():
    assert _policy("tracker", None) == "PASSIVE"
    assert _policy("backbones", None) == "PASSIVE"
    assert _policy("backbones", "ACTIVE") == "ACTIVE"
