"""`python -m quantdesk` is the same as the `quantdesk` command."""

import sys

from quantdesk.cli import main

sys.exit(main())
