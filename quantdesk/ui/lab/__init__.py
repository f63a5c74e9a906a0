"""The Lab page: what each quantization level of a model costs, measured on this computer.

- page.py: LabPage, the set-up, the run and the earlier runs;
- models.py: LadderModel, the table's item model (and the verdict in words it shows);
- chart.py: the size-vs-KL chart. It imports pyqtgraph, so nothing imports it until the page
  first shows a result (LabPage.chart): opening the window must not load pyqtgraph.
"""

from quantdesk.ui.lab.page import LabPage

__all__ = ["LabPage"]
