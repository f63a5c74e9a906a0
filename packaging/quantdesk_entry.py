"""Entry point of the bundled app: the same `quantdesk` command as the console script.

With no arguments it opens the window; `quantdesk selftest`, `quantdesk info FILE` etc. work
from the bundle too (that is how the release smoke test checks a built bundle).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    # Needed in a frozen app if anything ever starts a process with the "spawn" method
    # (the default on Windows and macOS); a no-op otherwise.
    multiprocessing.freeze_support()
    from quantdesk.main import main

    sys.exit(main())
