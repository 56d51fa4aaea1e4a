"""Where the client tests put what they found, for docs/clients.md (scripts/clients_table.py renders it).

Only when ``LIP_CLIENTS_REPORT`` names a file (``.ci/run`` and the table script set it): one JSON line per
(client, version, surface, upstream protocol) cell with its result. Without it nothing is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def record_result(*, client: str, version: str, surface: str, upstream: str, ok: bool, note: str) -> None:
    target = os.environ.get("LIP_CLIENTS_REPORT")
    if not target:
        return
    line = {"client": client, "version": version, "surface": surface, "upstream": upstream, "ok": ok,
            "note": note[:200]}
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
