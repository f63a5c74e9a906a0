"""The item models of the Lab (LadderModel) and of the Quantize page (LevelModel), on their own:
pytest-qt's model tester (rows, columns, parents, roles, resets) and what every cell shows."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtGui import QBrush, QFont

from quantdesk.core.lab.ladder import LadderResult, LevelResult
from quantdesk.core.quantize.run import LevelEstimate
from quantdesk.ui.lab.models import LadderModel
from quantdesk.ui.quantize_page import DEFAULT_LEVEL, LevelModel
from quantdesk.ui.widgets import RIGHT

# The type each role may hold, beyond the first cell that the model tester looks at.
ROLE_TYPES: dict[Qt.ItemDataRole, type | tuple[type, ...]] = {
    Qt.ItemDataRole.DisplayRole: str,
    Qt.ItemDataRole.ToolTipRole: str,
    Qt.ItemDataRole.FontRole: QFont,
    Qt.ItemDataRole.ForegroundRole: QBrush,
    Qt.ItemDataRole.TextAlignmentRole: int,
}


def _every_cell_is_sound(model: QAbstractItemModel) -> None:
    """Every cell's roles hold the type Qt expects (None where a role is not set)."""
    for row in range(model.rowCount()):
        for col in range(model.columnCount()):
            index = model.index(row, col)
            assert index.isValid()
            assert isinstance(model.data(index), str), (row, col)
            for role, kind in ROLE_TYPES.items():
                value = model.data(index, role)
                assert value is None or isinstance(value, kind), (row, col, role, value)
    for col in range(model.columnCount()):
        assert isinstance(model.headerData(col, Qt.Orientation.Horizontal), str)


def _level(level: str, size: int, kl: float, source: bool = False) -> LevelResult:
    return LevelResult(
        level=level,
        path=f"/nowhere/m-{level}.gguf",
        is_source=source,
        file_bytes=size,
        bits_per_weight=16.0 * size / 1_000_000_000,
        perplexity=10.0 + 20 * kl,
        kl_mean=kl,
        kl_p99=kl * 5,
        top1_agreement=1.0 - kl,
        prompt_tps=500.0,
        generate_tps=40.0,
    )


def _ladder(*levels: LevelResult) -> LadderResult:
    return LadderResult(
        model="m-F16.gguf",
        source="/nowhere/m-F16.gguf",
        created="2026-11-22T10:00:00+00:00",
        tokens_scored=1022,
        context=512,
        chunks=2,
        threads=None,
        gpu_layers=0,
        levels=list(levels),
    )


LADDER = _ladder(
    _level("F16", 1_000_000_000, 0.0, source=True),
    _level("Q8_0", 531_000_000, 0.004),
    _level("Q4_K_M", 300_000_000, 0.03),
    _level("Q2_K", 200_000_000, 0.5),
)


@pytest.mark.parametrize("force_py", [True, False], ids=["python tester", "Qt's tester"])
def test_the_ladder_model_passes_the_model_tester(qtmodeltester, force_py: bool) -> None:
    model = LadderModel()
    qtmodeltester.check(model, force_py=force_py)  # empty, then every reset is checked again
    model.set_result(LADDER)
    assert model.rowCount() == 4 and model.columnCount() == len(LadderModel.COLUMNS) == len(LadderModel.TIPS)
    _every_cell_is_sound(model)
    model.set_result(_ladder(_level("F16", 1_000_000_000, 0.0, source=True)))
    model.set_result(None)
    assert model.rowCount() == 0


def test_the_ladder_model_shows_the_source_as_the_reference() -> None:
    model = LadderModel()
    model.set_result(LADDER)
    source, q8 = model.cells(0), model.cells(1)
    assert source[0] == "F16 (source)" and source[4:8] == ("—", "—", "—", "—")
    assert q8[0] == "Q8_0" and q8[1] == "531 MB" and q8[5] == "0.0040" and q8[7] == "99.6%"
    assert [model.cells(r)[LadderModel.QUALITY] for r in range(4)] == [
        "Reference",
        "Close to the original",
        "Small loss",
        "Large loss",
    ]
    assert model.index(0, 0).data(Qt.ItemDataRole.FontRole).bold()  # the source's name stands out
    assert model.index(1, 1).data(Qt.ItemDataRole.TextAlignmentRole) == RIGHT
    assert model.index(1, 0).data(Qt.ItemDataRole.UserRole) is LADDER.levels[1]
    assert "Double-click to chat" in model.index(1, 3).data(Qt.ItemDataRole.ToolTipRole)
    assert model.headerData(5, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole).startswith("Mean KL")
    assert model.headerData(0, Qt.Orientation.Vertical) is None


LEVELS = [
    LevelEstimate("Q8_0", 140_000_000, 8.5, "Nearly lossless."),
    LevelEstimate(DEFAULT_LEVEL, 100_000_000, 4.9, "The usual choice."),
    LevelEstimate("IQ2_XXS", 0, 2.1, "Tiny.", problem="needs an importance matrix"),
]


@pytest.mark.parametrize("force_py", [True, False], ids=["python tester", "Qt's tester"])
def test_the_level_model_passes_the_model_tester(qtmodeltester, force_py: bool) -> None:
    model = LevelModel()
    qtmodeltester.check(model, force_py=force_py)
    model.set_levels(LEVELS, 270_000_000)
    _every_cell_is_sound(model)
    model.set_levels(LEVELS[:2], 270_000_000, estimated=True)  # a checkpoint's "about" sizes
    _every_cell_is_sound(model)
    model.set_levels([], 0)
    assert model.rowCount() == 0


def test_the_level_model_shows_sizes_problems_and_estimates() -> None:
    model = LevelModel()
    model.set_levels(LEVELS, 280_000_000)
    assert model.row_of(DEFAULT_LEVEL) == 1 and model.row_of("Q5_K_M") == -1
    assert [model.index(0, c).data() for c in range(4)] == ["Q8_0", "140 MB  (50%)", "8.50", "Nearly lossless."]
    assert model.index(1, 0).data(Qt.ItemDataRole.FontRole).bold()  # the default level stands out
    problem = model.index(2, 0)
    assert model.index(2, 3).data() == "needs an importance matrix" and model.index(2, 1).data() == "—"
    assert not (model.flags(problem) & Qt.ItemFlag.ItemIsEnabled)  # a level that cannot be made is greyed out
    assert model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsEnabled

    model.set_levels(LEVELS[:1], 280_000_000, estimated=True)
    assert model.index(0, 1).data().startswith("about ") and model.index(0, 2).data() == "~8.50"
    assert "once the checkpoint is converted" in model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
