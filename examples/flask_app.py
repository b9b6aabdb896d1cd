"""A Flask app whose views fall back across providers, on any threaded WSGI server.

``pip install flask`` then ``python examples/flask_app.py`` and open http://127.0.0.1:5000/ask.
Set the providers' keys (GROQ_API_KEY, OPENAI_API_KEY) and their real base URLs below, or
point them at ``failover fake-providers --port 8000``.
"""

from __future__ import annotations

import os

import httpx
from flask import Flask, jsonify

from failover import PlatformManager, PlatformSpec, fallback

BASE_URLS = {
    "groq": os.environ.get("GROQ_BASE_URL", "https://api.groq.com/openai/v1"),
    "openai": os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
}

manager = PlatformManager(
    {"text_generation": [("groq", "llama-3.3-70b-versatile"), ("openai", "gpt-4o-mini")]}
)
client = httpx.Client(timeout=30)  # thread-safe and pooled: one for the whole app
app = Flask(__name__)


@fallback("text_generation", manager=manager)
def complete(platform: PlatformSpec, prompt: str) -> str:
    key = os.environ[platform.api_key_env or ""]
    response = client.post(
        f"{BASE_URLS[platform.name]}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": platform.model, "messages": [{"role": "user", "content": prompt}]},
    )
    response.raise_for_status()  # failover classifies credit, rate-limit and key errors
    return str(response.json()["choices"][0]["message"]["content"])


@app.get("/ask")
def ask() -> object:
    text, platform = complete.call_with_platform("One line on why fallbacks matter.")
    return jsonify({"platform": platform.name, "text": text})


@app.get("/health")
def health() -> object:
    return jsonify(manager.get_health_status())


if __name__ == "__main__":
    app.run(threaded=True)
