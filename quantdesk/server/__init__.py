"""The local API server: the third face over the same core as the window and the command line.

OpenAI- and Anthropic-compatible HTTP endpoints (Starlette on uvicorn) over the chat engine in
quantdesk.core.chat, with the same templates and per-model settings as Chat. The parts:

- `runner`: ServerConfig (address, key, limits) and Server, which runs uvicorn in a thread (the
  window) or in the foreground (`quantdesk serve`);
- `app`: the ASGI application: routes, the API key, CORS, body limits, the request log;
- `registry`: which models are loaded (on first request, least recently used out, idle TTL,
  within the fit model's memory) and the fair, bounded queue in front of each;
- `generation`: one request run against a loaded llama.cpp model in a worker thread;
- `openai_api`, `anthropic_api`: the two wire formats; `tools`: tool calls and grammars;
- `errors`: the OpenAI (and Anthropic) error shape.
"""
