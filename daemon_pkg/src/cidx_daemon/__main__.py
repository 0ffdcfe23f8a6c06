"""``python -m cidx_daemon ...``: the same CLI as the ``cidx-daemon`` script."""

from cidx_daemon.cli import main

raise SystemExit(main())
