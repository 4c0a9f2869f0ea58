"""``python -m feedbot`` is the ``feedbot`` command."""

from feedbot.cli import main

raise SystemExit(main())
