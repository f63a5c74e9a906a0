"""The Discover page: find models on the Hugging Face Hub, see what fits, download them.

- page.py: DiscoverPage, the page itself (search, a model's files, the queue's buttons);
- models.py: the Qt item models of its lists (ResultsModel, FilesModel, DownloadsModel) and
  ProgressDelegate;
- queue.py: DownloadQueue, the Qt adapter over quantdesk.core.hub.queue's state machine;
- dialogs.py: TokenDialog, for a Hub access token.
"""

from quantdesk.ui.discover.dialogs import TokenDialog
from quantdesk.ui.discover.models import DownloadsModel, FilesModel, ProgressDelegate, ResultsModel
from quantdesk.ui.discover.page import DiscoverPage
from quantdesk.ui.discover.queue import DownloadQueue

__all__ = [
    "DiscoverPage",
    "DownloadQueue",
    "DownloadsModel",
    "FilesModel",
    "ProgressDelegate",
    "ResultsModel",
    "TokenDialog",
]
