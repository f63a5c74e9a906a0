"""Copyable examples of calling the server: curl, Python (openai) and JavaScript (openai).

Headless so the Server page shows them and tests check them without a window. They use the
address clients should dial (on the network: this machine's LAN address, not 0.0.0.0).
"""

from __future__ import annotations

import json
import socket


def lan_address() -> str:
    """This machine's address on its local network, as others reach it ("127.0.0.1" if none).

    A UDP socket "connected" to a private address picks the outgoing interface; no packet is sent.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def client_base(host: str, port: int) -> str:
    """The base URL a client uses: 0.0.0.0 / :: mean "every interface", which nobody can dial."""
    if host in ("0.0.0.0", "::", ""):
        host = lan_address()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1"


def snippets(base_url: str, api_key: str, model: str) -> dict[str, str]:
    """{"curl": ..., "Python": ..., "JavaScript": ...} calling chat completions on `model`."""
    key = api_key or "not-needed"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    auth = f' \\\n  -H "Authorization: Bearer {api_key}"' if api_key else ""
    curl = f"curl {base_url}/chat/completions \\\n  -H \"Content-Type: application/json\"{auth} \\\n  -d '{body}'"
    python = (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}", api_key="{key}")\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    javascript = (
        'import OpenAI from "openai";\n\n'
        f'const client = new OpenAI({{ baseURL: "{base_url}", apiKey: "{key}" }});\n'
        "const reply = await client.chat.completions.create({\n"
        f'  model: "{model}",\n'
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(reply.choices[0].message.content);"
    )
    return {"curl": curl, "Python": python, "JavaScript": javascript}
