"""Search, repo details, file grouping and fit, against the fake Hub with the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from quantdesk.core.fit import Machine, ModelSize, Verdict
from quantdesk.core.hub import client as hub
from quantdesk.core.hub.client import FileGroup, RemoteFile
from tests.hubserver import TOKEN

GB = 1_000_000_000


# -- search ------------------------------------------------------------------------------------


def test_search_filters_sorts_and_fills_every_column(fake_hub):
    page = hub.search(hub.SearchQuery(text="tiny", gguf=True, sort="downloads"))
    assert [r.repo_id for r in page.results] == ["acme/Tiny-GGUF"]
    r = page.results[0]
    assert (r.author, r.name, r.downloads, r.likes, r.license, r.gated) == (
        "acme",
        "Tiny-GGUF",
        5000,
        40,
        "apache-2.0",
        "",
    )
    assert r.last_modified is not None and r.last_modified.year == 2026
    assert r.parameters == 60_000
    sent = [q for q in fake_hub.requests if q["path"].startswith("/api/models?")][-1]["path"]
    assert "filter=gguf" in sent and "sort=downloads" in sent and "search=tiny" in sent

    by_likes = hub.search(hub.SearchQuery(sort="likes"))
    assert by_likes.results[0].repo_id == "acme/Tiny"  # 75 likes
    gated = [r for r in by_likes.results if r.repo_id == "bigco/Locked-GGUF"][0]
    assert gated.gated == "manual"
    text_gen = hub.search(hub.SearchQuery(text_generation=True, safetensors=True))
    assert [r.repo_id for r in text_gen.results] == ["acme/Tiny"]
    sized = hub.search(hub.SearchQuery(architecture="qwen2", min_params_b=2, max_params_b=4))
    assert sorted(r.repo_id for r in sized.results) == [
        "someone/Other-1-GGUF",
        "someone/Other-2-GGUF",
        "someone/Other-3-GGUF",
    ]


def test_search_pages_follow_the_hubs_link_header(fake_hub):
    fake_hub.page_size = 2  # the client must follow `Link: rel="next"` to fill a page of 3
    q = hub.SearchQuery(sort="downloads", page_size=3)
    first, second, third = hub.search(q, 0), hub.search(q, 1), hub.search(q, 2)
    ids = [r.repo_id for p in (first, second, third) for r in p.results]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert ids[:2] == ["acme/Tiny-GGUF", "acme/Tiny"]
    assert first.has_more and second.has_more and not third.has_more
    assert any("cursor=" in q["path"] for q in fake_hub.requests)


def test_unknown_sort_is_refused():
    with pytest.raises(hub.HubError, match="unknown sort"):
        hub.search(hub.SearchQuery(sort="best"))


# -- one repo ----------------------------------------------------------------------------------


def test_repo_details_have_sizes_hashes_and_the_commit(fake_hub):
    d = hub.repo_details("acme/Tiny-GGUF")
    repo = fake_hub.repos["acme/Tiny-GGUF"]
    assert d.sha == repo.sha and d.license == "apache-2.0" and d.base_models == ("acme/Tiny",)
    files = {f.path: f for f in d.files}
    q4 = files["Tiny-Q4_K_M.gguf"]
    assert q4.size == len(repo.files["Tiny-Q4_K_M.gguf"]) and len(q4.sha256) == 64
    assert files["README.md"].sha256 is None and len(files["README.md"].blob_id) == 40
    assert any("blobs=true" in q["path"] or "blobs=True" in q["path"] for q in fake_hub.requests)


def test_repo_view_groups_files_reads_readme_and_config(fake_hub):
    v = hub.load_repo_view("acme/Tiny-GGUF")
    assert [(g.label, g.shards, g.complete) for g in v.groups] == [
        ("Q4_K_M", 1, True),
        ("Q8_0", 1, True),
        ("F16", 2, True),
    ]
    f16 = v.groups[2]
    assert f16.size == sum(len(fake_hub.repos["acme/Tiny-GGUF"].files[p]) for p in f16.paths)
    assert v.readme.startswith("# Tiny GGUF") and "license:" not in v.readme
    # No config.json in the GGUF repo: the shape comes from its base model's config.json.
    assert v.shape == ModelSize(0, n_layers=2, kv_dims=2 * 2 * 16, max_context=2048)
    assert [f.path for f in v.other_files] == ["README.md"]

    ckpt = hub.load_repo_view("acme/Tiny")
    assert [(g.kind, g.label) for g in ckpt.groups] == [("checkpoint", "safetensors checkpoint")]
    assert sorted(ckpt.groups[0].paths) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_hub_errors_become_plain_sentences(fake_hub, monkeypatch):
    with pytest.raises(hub.HubError, match="no such model"):
        hub.repo_details("acme/Nope")
    fake_hub.fault("api:acme/Tiny", "status", status=500)
    with pytest.raises(hub.HubError, match=r"server error \(HTTP 500\)"):
        hub.repo_details("acme/Tiny")
    with pytest.raises(hub.HubError, match="not a model id"):
        hub.repo_details("a/b/c")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(hub.HubError, match="cannot connect"):
        hub.repo_details("acme/Tiny")


def test_token_is_checked_and_stored_where_huggingface_hub_reads_it(fake_hub):
    from huggingface_hub import constants, get_token

    assert hub.token_source() == ""
    with pytest.raises(hub.HubError, match="did not accept"):
        hub.save_token("hf_wrong")
    assert get_token() is None
    assert hub.save_token(TOKEN) == "tester"
    assert get_token() == TOKEN and hub.token_source() == "saved"
    with open(constants.HF_TOKEN_PATH, encoding="utf-8") as f:
        assert f.read() == TOKEN
    if sys.platform != "win32":  # a secret: readable by its owner only
        assert os.stat(constants.HF_TOKEN_PATH).st_mode & 0o777 == 0o600
    hub.forget_token()
    assert get_token() is None


def test_the_fake_hub_serves_the_real_clients_own_download(fake_hub, tmp_path):
    """hf_hub_download (HEAD, redirect, X-Linked-* headers, ETag) works against the fake as against the Hub."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download("acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    assert Path(path).read_bytes() == fake_hub.repos["acme/Tiny-GGUF"].files["Tiny-Q4_K_M.gguf"]


# -- grouping, shapes and fit (no network) -----------------------------------------------------


@pytest.mark.parametrize(
    "name, quant",
    [
        ("Llama-3-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("model-IQ2_XXS.gguf", "IQ2_XXS"),
        ("x-UD-Q4_K_XL-00001-of-00003.gguf", "UD-Q4_K_XL"),
        ("qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf", "Q5_K_M"),
        ("model-bf16.gguf", "BF16"),
        ("phi-2.Q8_0.gguf", "Q8_0"),
        ("gemma-2b.gguf", None),
    ],
)
def test_quant_level_from_file_name(name, quant):
    assert hub.quant_from_name(name) == quant


def _f(path: str, size: int = GB) -> RemoteFile:
    return RemoteFile(path, size, "0" * 64)


def test_grouping_splits_projectors_checkpoints_and_missing_parts():
    files = [
        _f("m-Q4_K_M.gguf"),
        _f("m-Q2_K.gguf"),
        _f("big/m-Q8_0-00001-of-00003.gguf"),
        _f("big/m-Q8_0-00002-of-00003.gguf"),
        _f("mmproj-m-f16.gguf"),
        _f("model-00001-of-00002.safetensors"),
        _f("model-00002-of-00002.safetensors"),
        _f("config.json", 1000),
        _f("README.md", 10),
        _f("pytorch_model.bin"),
    ]
    groups = hub.group_files(files)
    labels = [(g.kind, g.label, g.complete) for g in groups]
    assert labels == [
        ("gguf", "Q2_K", True),
        ("gguf", "Q4_K_M", True),
        ("gguf", "Q8_0", False),
        ("projector", "vision projector (F16)", True),
        ("checkpoint", "safetensors checkpoint", True),
    ]
    assert groups[-1].size == 2 * GB + 1000


def test_shape_from_config_and_kv_cache_arithmetic():
    shape = hub.shape_from_config(
        {
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "hidden_size": 4096,
            "max_position_embeddings": 8192,
        }
    )
    assert shape == ModelSize(0, n_layers=32, kv_dims=2 * 8 * 128, max_context=8192)
    assert shape.kv_bytes(8192) == 1024 * 1024 * 1024  # Llama-3-8B: 128 KiB per token
    assert hub.shape_from_config({"hidden_size": 1}) is None
    est = hub.estimate_shape(8 * GB, 0, 16)
    assert est.estimated and 100_000 < est.kv_bytes(1) < 200_000


def test_fit_verdicts_and_the_recommended_level():
    mem = Machine(ram_available_bytes=10 * GB, ram_total_bytes=16 * GB)
    shape = ModelSize(0, n_layers=32, kv_dims=2 * 8 * 128, max_context=8192)
    groups = [
        FileGroup(q, "gguf", (_f(f"m-{q}.gguf", int(s * GB)),), quant=q)
        for q, s in (("Q2_K", 3.2), ("Q4_K_M", 4.9), ("Q5_K_M", 5.7), ("Q6_K", 6.6), ("Q8_0", 8.5), ("F16", 16.1))
    ]
    out = {a.group.label: a for a in hub.assess(groups, shape, 4096, mem)}
    assert out["Q4_K_M"].fit.verdict is Verdict.FITS and out["Q6_K"].fit.verdict is Verdict.FITS
    assert out["Q8_0"].fit.verdict is Verdict.TIGHT and out["F16"].fit.verdict is Verdict.WONT_FIT
    assert [k for k, a in out.items() if a.recommended] == ["Q6_K"]  # the largest sweet-spot level that fits
    text = out["Q4_K_M"].fit.explain()
    assert "KV cache" in text and "4,096 tokens" in text and "RAM free" in text
    small = Machine(ram_available_bytes=2 * GB, ram_total_bytes=4 * GB)
    assert not any(a.recommended for a in hub.assess(groups[2:], shape, 4096, small))
    only_small = {a.group.label: a for a in hub.assess(groups, shape, 4096, Machine(int(5.5 * GB), 8 * GB))}
    assert only_small["Q2_K"].recommended  # nothing in the sweet spot fits: the largest that does
    # A GPU takes every layer it holds ("auto", as Chat would load it): the rest must fit the RAM.
    card = Machine(2 * GB, 4 * GB, vram_free_bytes=24 * GB)
    gpu = {a.group.label: a for a in hub.assess(groups, shape, 4096, card)}
    assert gpu["Q8_0"].fit.verdict is Verdict.FITS and gpu["Q8_0"].fit.gpu_layers == -1 and gpu["Q6_K"].recommended
    assert "VRAM free (all layers on the GPU" in gpu["Q8_0"].fit.explain()


def test_search_json_cli(fake_hub, capsys):
    from quantdesk.cli import main

    assert main(["search", "tiny", "--gguf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["repo_id"] for r in out] == ["acme/Tiny-GGUF"]
    assert main(["search", "--sort", "likes", "--limit", "2"]) == 0
    text = capsys.readouterr().out
    assert "acme/Tiny " in text and "75" in text and "mit" in text


def test_files_cli_shows_groups_sizes_fit_and_recommendation(fake_hub, capsys):
    from quantdesk.cli import main

    assert main(["files", "acme/Tiny-GGUF"]) == 0
    text = capsys.readouterr().out
    assert "★ Q4_K_M" in text and "(2 parts)" in text and "fits" in text and "from config.json" in text
    assert main(["files", "acme/Tiny-GGUF", "--json", "--context", "1024"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["context"] == 1024 and [g["label"] for g in data["groups"] if g["recommended"]] == ["Q4_K_M"]
    assert main(["files", "acme/Nope"]) == 2
    assert "no such model" in capsys.readouterr().err
