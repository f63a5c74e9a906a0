"""Chat templates of several families render the turn format each family documents."""

from __future__ import annotations

import pytest

from quantdesk.core.chat.templates import TEMPLATES, render
from quantdesk.core.gguf.index import read_metadata

CONVO = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "2+2?"},
]

EXPECTED = {
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<s>[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] 2+2? [/INST]",
    "gemma": "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
    "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\n2+2?<|end|>\n"
    "<|assistant|>\n",
}
TOKENS = {"llama3": ("<|begin_of_text|>", "<|eot_id|>"), "mistral": ("<s>", "</s>"), "gemma": ("<bos>", "<eos>")}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_builtin_family_templates(family):
    bos, eos = TOKENS.get(family, ("", ""))
    assert render(TEMPLATES[family].source, CONVO, bos_token=bos, eos_token=eos) == EXPECTED[family]


def test_every_builtin_template_is_tested():
    assert set(TEMPLATES) == set(EXPECTED)


def test_starter_models_own_template_is_chatml(starter_model):
    source = read_metadata(starter_model)["tokenizer.chat_template"]
    prompt = render(source, CONVO[:2])
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    # with no system message, SmolLM2's template supplies its own default one
    assert render(source, CONVO[1:2]).startswith("<|im_start|>system\n")
