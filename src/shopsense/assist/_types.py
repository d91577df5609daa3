"""What one assistant turn returns: the answer text, the facts it cites, the products it
shows and the query state it leaves behind."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopsense.catalog import Product

__all__ = ["Answer", "Fact"]


@dataclass(frozen=True)
class Fact:
    """One stored fact an answer rests on, named so it can be checked against the store.

    ``kind`` is ``"product"`` (a product shown: ``field="title"``), ``"field"`` (one field
    of a product: ``price``, ``in_stock``, ``brand``, ``rating``, ``category``,
    ``attributes.<name>``, or a quote of ``title``/``description``), ``"absent"`` (the
    product has no such field: ``value`` is empty) or ``"policy"`` (a passage of the shop's
    policy files: ``source`` is ``file#anchor``, ``value`` the quoted text, verbatim).
    """

    kind: str
    value: str
    product_id: str | None = None
    field: str | None = None
    label: str | None = None
    source: str | None = None
    link: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Answer:
    """One turn of the assistant.

    ``text`` is what the shopper reads; ``grounded_text`` the answer built from the facts
    alone (``text`` differs only when a generative back-end reworded it and the verifier
    accepted the result: ``generated``). ``products`` are the cards to show, ``table`` a
    comparison (rows of ``[label, value per product]``), ``state`` the dialogue state after
    the turn (base query, constraints, shown ids, the product "it" refers to).
    """

    text: str
    intent: str
    facts: list[Fact] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    understood: dict[str, Any] = field(default_factory=dict)
    table: dict[str, Any] | None = None
    links: list[dict[str, str]] = field(default_factory=list)
    grounded_text: str = ""
    generated: bool = False
    verifier: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.grounded_text:
            self.grounded_text = self.text

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: products as dicts (the storefront's card shape)."""
        return {
            "text": self.text, "intent": self.intent, "facts": [f.as_dict() for f in self.facts],
            "products": [p.model_dump(mode="json") for p in self.products], "state": self.state,
            "understood": self.understood, "table": self.table, "links": self.links,
            "grounded_text": self.grounded_text, "generated": self.generated, "verifier": self.verifier,
            "took_ms": self.took_ms,
        }
