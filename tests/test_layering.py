"""The service stands on the serving core alone (shared/DESIGN.md, the three rooms): importing
it loads no training or lab module, and works with tqdm and matplotlib unavailable.
import-linter checks the same statically (`lint-imports`, in `make test`); this checks what
really loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tqdm and matplotlib made unimportable: torch.hub falls back to its own progress bar when tqdm
# is missing, and any import of either from the service would fail here.
_PROBE = """
import json, sys
sys.modules["tqdm"] = None
sys.modules["matplotlib"] = None
import service.app, service.cli
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_service_loads_no_training_lab_tqdm_or_matplotlib():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert {"mrmp", "service"} <= loaded
    assert not loaded & {"training", "lab", "bench"}, loaded & {"training", "lab", "bench"}
