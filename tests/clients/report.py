"""Where the client tests put what they found, for docs/clients.md (scripts/clients_table.py renders it).

Only when ``LIP_CLIENTS_REPORT`` names a file (``.ci/run`` sets it): one JSON line per cell, appended.
Without it nothing is written.

- ``kind: "agent"``: a real agent's tool round trip — client, version, surface, upstream protocol, ok, note
  (the tool called, or the known failure's reason / the first line of the failure);
- ``kind: "replay"``: one recorded request replayed — the same, plus ``fixture`` and ``dropped`` (what the
  proxy's ``x-lip-dropped`` header named for that upstream).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPORT_ENV = "LIP_CLIENTS_REPORT"


def record_result(**cell: Any) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target:
        return
    if isinstance(cell.get("note"), str):
        cell["note"] = cell["note"][:200]
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps(cell, sort_keys=True) + "\n")
