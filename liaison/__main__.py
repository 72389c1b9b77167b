"""The `liaison` command: Django's management commands under one name.

`liaison demo-data` runs the `demo_data` command; `liaison import taxonomy FILE`, `liaison audit
verify` and `liaison worker` are commands with sub-commands. `liaison help` lists them all.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liaison.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "liaison"
    if len(args) > 1 and not args[1].startswith("-"):
        args[1] = args[1].replace("-", "_")
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
