"""``python -m meshcore``: the same as the ``meshcore`` command."""

from .cli import main

raise SystemExit(main())
