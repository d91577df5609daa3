"""One client for the optional generative back-end: any OpenAI-compatible
``/chat/completions`` endpoint (``Settings.llm_url``, ``llm_model``, ``llm_api_key``).

Off by default; nothing in shopsense needs it. The reason rephraser
(:class:`shopsense.rerank.OpenAIRephraser`) and the assistant's answer rewording
(:class:`shopsense.assist.OpenAIGenerator`) build on it and check what comes back: a
failure or an answer that adds a fact keeps the template text.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

__all__ = ["ChatEndpoint"]

E = TypeVar("E", bound="ChatEndpoint")


class ChatEndpoint:
    """``complete(prompt)``: one user message in, the first choice's text out
    (temperature 0, ``timeout`` seconds)."""

    def __init__(self, url: str, model: str = "gpt-4o-mini", api_key: str | None = None,
                 timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        """One from ``settings.llm_url`` (``None`` when it is unset: the back-end is off)."""
        url = getattr(settings, "llm_url", None)
        if not url:
            return None
        key = getattr(settings, "llm_api_key", None)
        return cls(url, model=getattr(settings, "llm_model", None) or "gpt-4o-mini",
                   api_key=key.get_secret_value() if hasattr(key, "get_secret_value") else key)

    def _endpoint(self) -> str:
        return self.url if self.url.endswith("/chat/completions") else self.url + "/chat/completions"

    def complete(self, prompt: str) -> str:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        resp = httpx.post(self._endpoint(), timeout=self.timeout, headers=headers, json={
            "model": self.model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]})
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"]).strip()
