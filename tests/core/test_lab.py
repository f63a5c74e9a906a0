"""The quant ladder (quantdesk.core.lab.ladder, `quantdesk lab`): the metrics on their own, then real ladders
through llama.cpp on the starter model cut to 2 layers, in F16."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from quantdesk.cli import main as cli_main
from quantdesk.core.jobs import Cancelled, CancelToken, Progress
from quantdesk.core.lab import ladder
from quantdesk.core.lab.ladder import LabError, LadderRequest

SMALL = dict(tokens=256, context=128, generate_tokens=4, threads=2)


def _quiet(p: Progress) -> None:
    pass


# --- the metrics ------------------------------------------------------------------------------------


def test_log_softmax_is_a_distribution_and_stable() -> None:
    logits = np.array([[0.0, 1.0, 2.0], [1000.0, 1000.0, -1000.0]], dtype=np.float32)
    logp = ladder.log_softmax(logits)
    assert np.allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(logp[1, :2], math.log(0.5)) and np.isfinite(logp).all()


def test_scores_match_the_definitions() -> None:
    ref = ladder.log_softmax(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32))
    other = ladder.log_softmax(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32))
    s = ladder.score_chunk(other, np.array([0, 2]), ref)
    p = np.exp(ref[0].astype(np.float64))
    assert s.kl[0] == pytest.approx(float((p * (ref[0] - other[0])).sum()), rel=1e-6)
    assert s.kl[1] == pytest.approx(0.0, abs=1e-9)  # the same distribution
    assert s.same_top.tolist() == [False, True]
    assert s.nll.tolist() == pytest.approx([-other[0, 0], -other[1, 2]])
    # a model that spreads evenly over V tokens has perplexity V
    uniform = ladder.log_softmax(np.zeros((5, 7), dtype=np.float32))
    assert ladder.perplexity(ladder.score_chunk(uniform, np.arange(5), None).nll) == pytest.approx(7.0)


def test_chunks_start_with_bos_and_never_run_past_the_text() -> None:
    tokens = list(range(100, 1100))
    chunks = ladder.chunks_of(tokens, 256, 10_000, bos=1)
    assert len(chunks) == 3 and all(len(c) == 256 and c[0] == 1 for c in chunks)
    assert chunks[1][1:] == tokens[257:512]
    assert len(ladder.chunks_of(tokens, 256, 300, bos=None)) == 1
    assert ladder.chunks_of(tokens, 256, 300, bos=None)[0][0] == 100


def test_the_builtin_text_is_long_enough_for_the_default_ladder() -> None:
    text = ladder.builtin_text()
    assert len(text) > 10_000  # ~3,000 tokens: the default 1,024 and 2,048-token runs fit


# --- real ladders ---------------------------------------------------------------------------------


def test_a_model_compared_with_itself_shows_no_divergence(f16_small: Path) -> None:
    """The KL machinery end to end: llama.cpp on the CPU is deterministic, so the source read twice
    gives exactly its own distributions back."""
    request = LadderRequest(f16_small, ["Q8_0"], **SMALL)
    tokens, bos, n_vocab = ladder.evaluation_tokens(request)
    chunks = ladder.chunks_of(tokens, request.context, request.tokens, bos)
    ref = np.zeros((len(chunks), request.context - 1 - request.context // 2, n_vocab), np.float32)
    first = ladder.measure(f16_small, chunks, request, None, ref, _quiet, CancelToken(), "F16")
    again = ladder.measure(f16_small, chunks, request, ref, None, _quiet, CancelToken(), "F16")
    assert again.kl_mean == pytest.approx(0.0, abs=1e-6) and again.top1_agreement == 1.0
    assert again.perplexity == first.perplexity and math.isfinite(first.perplexity) and first.perplexity > 1


def test_a_ladder_orders_levels_by_size_and_loss_grows_as_bits_shrink(f16_small: Path) -> None:
    stages: list[str] = []
    result = ladder.run_ladder(
        LadderRequest(f16_small, ["Q2_K", "Q8_0"], **SMALL), lambda p: stages.append(p.stage), CancelToken()
    )
    names = [r.level for r in result.levels]
    assert names == ["F16", "Q8_0", "Q2_K"] and result.levels[0].is_source
    src, q8, q2 = result.levels
    assert src.kl_mean == 0 and src.top1_agreement == 1
    assert 0 < q8.kl_mean < q2.kl_mean and q8.top1_agreement >= q2.top1_agreement
    assert src.file_bytes > q8.file_bytes > q2.file_bytes
    assert q8.bits_per_weight == pytest.approx(8.5, abs=0.6) and src.bits_per_weight == pytest.approx(16, abs=0.1)
    assert all(math.isfinite(r.perplexity) and r.prompt_tps > 0 and r.generate_tps > 0 for r in result.levels)
    assert result.tokens_scored == 2 * 63 and result.chunks == 2
    assert {"Quantizing Q8_0", "Quantizing Q2_K", "Measuring F16 (source)", "Measuring Q8_0"} <= set(stages)
    assert [ladder.quality_words(r) for r in result.levels][0] == "the original"

    # saved, listed, and a second run takes the levels from the cache
    saved = ladder.list_results()
    assert [r.path for r in saved] == [result.path]
    assert saved[0].levels == result.levels
    cached = Path(q8.path)
    before = cached.stat().st_mtime_ns
    stages.clear()
    ladder.run_ladder(LadderRequest(f16_small, ["Q8_0"], **SMALL), lambda p: stages.append(p.stage), CancelToken())
    assert cached.stat().st_mtime_ns == before and "Quantizing Q8_0" not in stages
    assert len(ladder.list_results()) == 2
    ladder.delete_result(saved[0])
    assert len(ladder.list_results()) == 1

    # the cache can be cleared; the saved runs keep their figures
    kept = ladder.cache_bytes()
    assert kept >= q8.file_bytes + q2.file_bytes
    assert ladder.clear_cache() == kept and ladder.cache_bytes() == 0 and not cached.exists()
    assert len(ladder.list_results()) == 1


def test_cancel_while_measuring_saves_nothing(f16_small: Path) -> None:
    cancel = CancelToken()

    def report(p: Progress) -> None:
        if p.stage == "Measuring Q8_0":
            cancel.cancel()  # as the Cancel button does, from here so that it cannot come too late

    with pytest.raises(Cancelled):
        ladder.run_ladder(LadderRequest(f16_small, ["Q8_0"], **SMALL), report, cancel)
    assert ladder.list_results() == []
    assert not any(p.is_file() for p in ladder.lab_dir().glob("*"))  # no result, no stray files


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(levels=["Q9_K"]), "unknown level 'Q9_K'"),
        (dict(levels=[]), "at least one level"),
        (dict(levels=["Q8_0", "Q8_0"]), "compared once"),
        (dict(context=127), "even number"),
        (dict(tokens=64), "at least one chunk"),
        (dict(text="Too short."), "fewer than one chunk"),
    ],
)
def test_bad_requests_get_one_line_and_save_nothing(f16_small: Path, change: dict, message: str) -> None:
    with pytest.raises(LabError, match=message):
        ladder.run_ladder(LadderRequest(f16_small, **{**SMALL, "levels": ["Q8_0"], **change}), _quiet, CancelToken())
    assert ladder.list_results() == []


def test_a_source_that_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "notes.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(LabError):
        ladder.run_ladder(LadderRequest(junk, ["Q8_0"], **SMALL), _quiet, CancelToken())
    with pytest.raises(LabError, match="no such file"):
        ladder.run_ladder(LadderRequest(tmp_path / "missing.gguf", ["Q8_0"], **SMALL), _quiet, CancelToken())
    assert junk.read_bytes() == b"not a model at all"


def test_the_cli_runs_a_ladder_and_lists_it(f16_small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["lab", "--list"]) == 0
    assert "No Lab runs yet" in capsys.readouterr().out
    assert (
        cli_main(["lab", str(f16_small), "--levels", "Q8_0", "--tokens", "128", "--context", "128", "--threads", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "F16 (source)" in out and "Q8_0" in out and "saved:" in out
    assert cli_main(["lab", "--list"]) == 0
    assert "smollm2" in capsys.readouterr().out
    assert cli_main(["lab", str(f16_small), "--levels", "Q7"]) == 2
    assert "unknown level 'Q7'" in capsys.readouterr().err
