"""How the command-line tests run `python -m minivlm ...` as a user does: a fresh process, output captured."""
import os
import subprocess
import sys


def run_cli(*args, timeout: float = 300):
    # one thread, as in conftest: the runs are tiny, and a second thread mostly waits when the machine is busy
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minivlm", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
