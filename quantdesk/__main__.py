"""`python -m quantdesk` is the same as the `quantdesk` command."""

import sys

from quantdesk.main import main

sys.exit(main())
