"""The chat engine against the real starter model and llama-cpp-python itself."""

from __future__ import annotations

import pytest

from quantdesk.core.chat.engine import (
    ChatEngine,
    ChatError,
    ChatSettings,
    ReplyStream,
    default_settings,
    estimate_memory,
    read_facts,
)
from quantdesk.core.fit import Machine, Verdict
from quantdesk.core.jobs import CancelToken

GREEDY = dict(temperature=0.0, seed=0, max_tokens=16, context_length=512, threads=1)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(starter_model):
    e = ChatEngine()
    e.load(starter_model, ChatSettings(**GREEDY))
    yield e
    e.unload()


def test_greedy_reply_equals_llama_cpp_python(engine, starter_model):
    import llama_cpp

    settings = ChatSettings(**GREEDY)
    ours = engine.generate(QUESTION, settings)
    raw = llama_cpp.Llama(model_path=str(starter_model), n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False)
    try:
        theirs = raw.create_chat_completion(
            messages=QUESTION,
            temperature=0.0,
            top_p=settings.top_p,
            top_k=settings.top_k,
            min_p=settings.min_p,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=16,
            seed=0,
        )
    finally:
        raw.close()
    assert ours.text == theirs["choices"][0]["message"]["content"]
    assert ours.text.strip()
    assert ours.stats.tokens == theirs["usage"]["completion_tokens"]
    assert ours.finish_reason == theirs["choices"][0]["finish_reason"] == "length"
    assert ours.stats.time_to_first_token_s > 0 and ours.stats.tokens_per_second > 0


def test_stop_ends_within_a_token(engine):
    cancel = CancelToken()
    stream = ReplyStream()
    stream.listeners.append(lambda text, n: cancel.cancel() if n >= 3 else None)
    reply = engine.generate(QUESTION, ChatSettings(**{**GREEDY, "max_tokens": 200}), stream, cancel=cancel)
    assert reply.finish_reason == "stopped"
    assert stream.tokens == 3, "no token is taken after Stop"
    assert reply.text == stream.text and reply.text


def test_system_prompt_and_history_reach_the_model(engine):
    settings = ChatSettings(**{**GREEDY, "system_prompt": "Always answer with the single word: banana."})
    reply = engine.generate([{"role": "user", "content": "Say something."}], settings)
    assert reply.text  # the prompt rendered and generated; the template tests check the text itself


def test_quantized_kv_cache_loads_and_generates(starter_model):
    e = ChatEngine()
    try:
        e.load(starter_model, ChatSettings(**{**GREEDY, "kv_cache_type": "q8_0", "max_tokens": 4}))
        assert e.generate(QUESTION, ChatSettings(**{**GREEDY, "max_tokens": 4})).text
    finally:
        e.unload()


def test_bad_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(ChatError) as info:
        ChatEngine().load(bad, ChatSettings())
    assert "not a GGUF file" in str(info.value) and "\n" not in str(info.value)


def test_facts_defaults_and_memory_estimate(starter_model):
    facts = read_facts(starter_model)
    assert (facts.architecture, facts.size.n_layers, facts.context_train) == ("llama", 30, 8192)
    assert facts.size.kv_dims == 3 * (64 + 64)  # 3 KV heads of 64 for K and for V
    s = default_settings(facts)
    assert s.context_length == 4096
    est = estimate_memory(facts, s, Machine(16 * 10**9, 32 * 10**9))
    assert est.kv_bytes == 30 * 4096 * 384 * 2
    assert est.weights_bytes == starter_model.stat().st_size
    assert est.verdict is Verdict.FITS
    q4 = estimate_memory(facts, ChatSettings(context_length=4096, kv_cache_type="q4_0"), Machine(10**9, 10**9))
    assert q4.kv_bytes < est.kv_bytes / 3
    # Over four fifths of the free RAM, within 90% of all of it: other programs must give way.
    assert estimate_memory(facts, s, Machine(est.need_bytes, 2 * est.need_bytes)).verdict is Verdict.TIGHT
    assert estimate_memory(facts, s, Machine(10**8, 10**8)).verdict is Verdict.WONT_FIT


def test_settings_round_trip_ignores_junk():
    s = ChatSettings(temperature=0.2, top_k=7, kv_cache_type="q8_0")
    again = ChatSettings.from_dict({**s.to_dict(), "unknown": 1, "top_p": "not a number"})
    assert again == s


@pytest.mark.parametrize("cut", [0, 3, 10, 30, 5000])
def test_truncated_headers_are_one_line_errors(starter_model, tmp_path, cut):
    from quantdesk.core.gguf.reader import GGUFError

    part = tmp_path / "part.gguf"
    part.write_bytes(starter_model.read_bytes()[:cut])
    with pytest.raises(GGUFError) as info:
        read_facts(part)
    assert "\n" not in str(info.value)


def test_long_conversation_drops_oldest_turns_to_fit(engine):
    settings = ChatSettings(**{**GREEDY, "max_tokens": 8, "system_prompt": "Be brief."})
    history = []
    for i in range(16):
        history += [
            {"role": "user", "content": f"Tell me fact number {i} about the sea, in detail please."},
            {"role": "assistant", "content": "The sea is large and deep and full of life. " * 2},
        ]
    history.append({"role": "user", "content": "Thanks!"})
    reply = engine.generate(history, settings)  # 512 tokens of context: the whole history cannot fit
    assert reply.dropped_messages > 0 and reply.text
    kept, dropped = engine.fit_context([{"role": "system", "content": "x"}] + history, 8)
    assert kept[0]["role"] == "system" and kept[-1]["content"] == "Thanks!" and dropped > 0


def test_template_override_is_used_and_can_be_undone(engine):
    settings = ChatSettings(**{**GREEDY, "max_tokens": 6})
    own = engine.generate(QUESTION, settings).text
    engine.set_template("chatml")  # SmolLM2 is ChatML too, but without its default system prompt
    try:
        assert engine.llm.chat_handler is not None
        override = engine.generate(QUESTION, settings).text
        assert override and "<|im_end|>" not in override
    finally:
        engine.set_template("")
    assert engine.llm.chat_handler is None
    assert engine.generate(QUESTION, settings).text == own


def test_auto_gpu_layers_fill_free_vram_and_no_gpu_means_none(starter_model) -> None:
    from quantdesk.core.chat.engine import read_facts
    from quantdesk.core.fit import gpu_layers_that_fit

    size = read_facts(starter_model).size
    assert gpu_layers_that_fit(size, 2048, None) == 0  # CPU-only build: nothing to offload to
    assert gpu_layers_that_fit(size, 2048, 100_000_000) == 0  # less than the reserve
    assert gpu_layers_that_fit(size, 2048, 80_000_000_000) == -1  # everything fits: "all"
    some = gpu_layers_that_fit(size, 2048, 400_000_000)
    assert 0 < some < size.n_layers
    # A bigger KV cache for the same card leaves room for fewer layers.
    assert gpu_layers_that_fit(size, 8192, 400_000_000) <= some


def test_memory_estimate_puts_offloaded_layers_in_vram(starter_model) -> None:
    from quantdesk.core.chat.engine import ChatSettings, estimate_memory, read_facts

    facts = read_facts(starter_model)
    cpu = estimate_memory(facts, ChatSettings(gpu_layers=10), Machine(16 * 10**9, 32 * 10**9))
    assert cpu.gpu_bytes == 0 and cpu.ram_bytes == cpu.need_bytes  # no GPU backend: all in RAM
    card = Machine(16 * 10**9, 32 * 10**9, vram_free_bytes=8 * 10**9)
    half = estimate_memory(facts, ChatSettings(gpu_layers=15), card)
    full = estimate_memory(facts, ChatSettings(gpu_layers=999), card)
    assert 0 < half.gpu_bytes < full.gpu_bytes and full.ram_bytes == full.overhead_bytes
    assert half.verdict is Verdict.FITS
    # More offloaded than the card holds: refused, whatever the RAM.
    tiny_card = Machine(16 * 10**9, 32 * 10**9, vram_free_bytes=10**6)
    assert estimate_memory(facts, ChatSettings(gpu_layers=999), tiny_card).verdict is Verdict.WONT_FIT


def _with_template(starter_model, tmp_path, template: str):
    """The starter model with its chat template replaced in place (padded with spaces to the same
    length, so the rest of the file stays where it was)."""
    from quantdesk.core.gguf.index import read_index

    kv = read_index(starter_model).fields["tokenizer.chat_template"]
    old = kv.value.encode("utf-8")
    data = bytearray(starter_model.read_bytes())
    at = data.index(old, kv.start)
    data[at : at + len(old)] = template.encode("utf-8").ljust(len(old), b" ")
    path = tmp_path / "templated.gguf"
    path.write_bytes(bytes(data))
    return path


def test_a_chat_template_that_is_not_jinja_is_a_one_line_error(starter_model, tmp_path):
    """llama-cpp-python compiles the file's template while loading: a TemplateSyntaxError escaped."""
    path = _with_template(starter_model, tmp_path, "{% for m in %}{{ m }")
    with pytest.raises(ChatError, match=r"templated.gguf: its chat template is not valid Jinja") as info:
        ChatEngine().load(path, ChatSettings(**GREEDY))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("template", ["{{ raise_exception('no system role') }}", "{{ messages[7].content }}"])
def test_a_chat_template_failing_on_the_conversation_is_a_one_line_error(starter_model, tmp_path, template):
    """Its raise_exception() or a missing message escaped as ValueError / UndefinedError."""
    e = ChatEngine()
    e.load(_with_template(starter_model, tmp_path, template), ChatSettings(**GREEDY))
    try:
        with pytest.raises(ChatError, match="the model's chat template failed on this conversation"):
            e.generate(QUESTION, ChatSettings(**GREEDY))
        e.set_template("chatml")  # the way out the message names
        assert e.generate(QUESTION, ChatSettings(**{**GREEDY, "max_tokens": 2})).text
    finally:
        e.unload()
