"""Chat templates: how a conversation becomes the prompt text a model was trained on.

By default a model uses the Jinja template stored in its GGUF (tokenizer.chat_template), which
llama-cpp-python renders. These built-in templates are the override for files whose template is
missing or wrong; each is written from the family's documented turn format. `render()` renders
any template exactly as the engine does, so tests and the settings panel preview the real prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from llama_cpp.llama_chat_format import ChatFormatterResponse, Jinja2ChatFormatter, LlamaChatCompletionHandler
from llama_cpp.llama_types import ChatCompletionRequestMessage


@dataclass(frozen=True)
class Template:
    label: str
    source: str  # Jinja, with messages, bos_token, eos_token, add_generation_prompt
    stop: tuple[str, ...]  # text that ends the assistant's turn


# Families whose models put the system prompt into the first user turn share this prelude.
_MERGE_SYSTEM = (
    "{% set msgs = messages %}{% set sys = '' %}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}{% endif %}"
)

TEMPLATES: dict[str, Template] = {
    "chatml": Template(
        "ChatML (Qwen, SmolLM, Hermes, Yi)",
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ("<|im_end|>",),
    ),
    "llama3": Template(
        "Llama 3",
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        ("<|eot_id|>",),
    ),
    "mistral": Template(
        "Mistral Instruct",
        _MERGE_SYSTEM + "{{ bos_token }}{% for m in msgs %}{% if m['role'] == 'user' %}[INST] "
        "{% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m['content'] }} [/INST]"
        "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
        ("</s>",),
    ),
    "gemma": Template(
        "Gemma",
        _MERGE_SYSTEM
        + "{{ bos_token }}{% for m in msgs %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        ("<end_of_turn>",),
    ),
    "phi3": Template(
        "Phi-3",
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
        ("<|end|>",),
    ),
}


def render(
    source: str,
    messages: list[dict[str, str]],
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text `source` makes of `messages`, rendered the way the engine renders it."""
    formatter = Jinja2ChatFormatter(
        source, eos_token=eos_token, bos_token=bos_token, add_generation_prompt=add_generation_prompt
    )
    # The role/content dicts are the shape llama-cpp-python's message TypedDicts describe.
    return formatter(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt


class _FamilyFormatter(Jinja2ChatFormatter):
    """Jinja2ChatFormatter that also stops at the family's end-of-turn text."""

    def __init__(self, template: Template, eos: str, bos: str, stop_ids: list[int] | None):
        super().__init__(template.source, eos_token=eos, bos_token=bos, stop_token_ids=stop_ids)
        self.extra_stop = list(template.stop)

    def __call__(self, **kwargs: Any) -> ChatFormatterResponse:
        response = super().__call__(**kwargs)
        stop = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
        response.stop = [s for s in stop if s] + self.extra_stop
        return response


def chat_handler(llm: Any, key: str) -> LlamaChatCompletionHandler:
    """A llama-cpp-python chat handler for built-in template `key`, for the loaded model `llm`."""
    if key not in TEMPLATES:
        raise KeyError(f"unknown chat template {key!r}; known: {', '.join(TEMPLATES)}")
    template = TEMPLATES[key]
    model = llm._model
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    eos = model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = model.token_get_text(bos_id) if bos_id != -1 else ""
    stop_ids = [eos_id] if eos_id != -1 else []
    for text in template.stop:  # the end-of-turn marker, when it is one special token in this vocab
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if len(ids) == 1:
            stop_ids.append(ids[0])
    return _FamilyFormatter(template, eos, bos, stop_ids or None).to_chat_handler()
