"""``python -m src.core.cli``: the user guide's start command, run from the repository root; the same as ``lip``.

A thin entry point, not a second command line: every flag, default and behaviour is ``lip serve``'s
(``lip.cli.main``), ``./config`` included. Use the project's own Python, where ``lip`` is installed:
``.venv/bin/python -m src.core.cli --default-backend internal-llm`` (``make run`` creates ``.venv``).
This directory is deliberately not a package of the distribution (pyproject.toml includes ``lip*`` only).
"""

from __future__ import annotations

import sys


def run() -> int:
    try:
        from lip.cli import main  # noqa: PLC0415 - a clear message instead of a traceback when lip is missing
    except ModuleNotFoundError as error:
        print(f"lip is not installed for {sys.executable} ({error}). Run `make run` once, then use the project's "
              "Python: .venv/bin/python -m src.core.cli ...", file=sys.stderr)
        return 1
    return main()


if __name__ == "__main__":
    sys.exit(run())
