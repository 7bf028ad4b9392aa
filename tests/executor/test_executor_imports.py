"""Torch stays out of the planner, the service and the executor's control side: only workers load it."""

import subprocess
import sys


def test_control_side_modules_import_without_torch():
    code = ("import sys; import placement, service.cli, executor.loop, executor.torch_backend, executor.live, "
            "executor.train.check, executor.train.launch; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
