"""Amazon review datasets: Office (items with text + user histories), Beauty and Sports
(sequences of ASINs).

None of these files carries timestamps, only the order of each user's interactions.
Events therefore get a *derived* timestamp: ``SEQUENCE_EPOCH + n`` seconds where ``n``
is the running position over the file (users in file order, each user's items in
their time order). It is strictly increasing, so every user's order is kept and no two
events collide, but it is not a real time: do not read trends or recency into it.
No synthetic events are added: one event per real interaction.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

from shopsense.catalog import Event, Product
from shopsense.datasets._arrays import Sequences
from shopsense.datasets._paths import dataset_file
from shopsense.datasets._readers import read_items, read_sequences

__all__ = [
    "SEQUENCE_EPOCH", "iter_amazon_events", "load_amazon_sequences", "load_office_events",
    "load_office_products", "load_office_sequences", "office_item_id", "office_user_id",
]

#: 2014-01-01 UTC, the year of the Amazon review dump; arbitrary but fixed
SEQUENCE_EPOCH = 1388534400.0

Name = Literal["beauty", "sports"]


def office_item_id(index: int | str) -> str:
    """Office items are numbered 0..2419 in the files; prefixed so they cannot collide
    with another catalogue's numeric ids in one store."""
    return f"office-{index}"


def office_user_id(index: int | str) -> str:
    """The shop user id of Amazon Office user ``index``: ``office-u<index>``."""
    return f"office-u{index}"


def _split_categories(text: str) -> list[str]:
    # The path is one string joined with ", "; names such as "Tape, Adhesives & Fasteners"
    # contain a comma themselves, so a part is re-joined with the previous one when
    # the previous part ends a clause that continues ("X, Y & Z").
    parts = [p.strip() for p in text.split(", ") if p.strip()]
    out: list[str] = []
    for p in parts:
        if out and "&" in p and "&" not in out[-1] and not p.startswith("&") and p.split()[0][0].isupper() \
                and len(out[-1].split()) == 1 and out[-1] not in {"Office", "Paper"}:
            out[-1] = f"{out[-1]}, {p}"
        else:
            out.append(p)
    return out


def load_office_products(limit: int | None = None) -> list[Product]:
    """The 2,420 Office items: title, description, brand and category path (root first).

    Office items have no price, rating or image in the source: those stay empty
    (price None), nothing is invented. HTML entities are unescaped. Read with
    :func:`~shopsense.datasets.read_items`, like a shop's item file.
    """
    items = read_items(dataset_file("rec", "amazon-office", "Office.item.json"))
    out = []
    for idx, item in sorted(zip(items.ids, items.records), key=lambda kv: int(kv[0])):
        if limit is not None and len(out) >= limit:
            break
        title = html.unescape(item.get("title") or "").strip()
        desc = html.unescape(item.get("description") or "").strip()
        category = _split_categories(html.unescape(item.get("categories") or ""))
        if not title:
            # 3 items have no title; the brand and leaf category name them honestly.
            title = " ".join(x for x in (item.get("brand", ""), category[-1] if category else "") if x) \
                or office_item_id(idx)
        out.append(Product(id=office_item_id(idx), title=title, description=desc,
                           brand=html.unescape(item.get("brand") or "").strip(), category=category))
    return out


def load_office_sequences(limit_users: int | None = None) -> Sequences:
    """User -> chronological Office item ids (4,905 users, 53,258 interactions), users in
    the order of their index. Read with :func:`~shopsense.datasets.read_sequences`."""
    data = read_sequences(dataset_file("rec", "amazon-office", "Office.inter.json"), "sequences")
    order = sorted(range(len(data.user_ids)), key=lambda k: int(data.user_ids[k]))[:limit_users]
    return Sequences.from_lists([office_user_id(data.user_ids[k]) for k in order],
                                [[office_item_id(data.item_ids[j]) for j in data.sequences[k]] for k in order])


def _events(seqs: Sequences, type: str) -> Iterator[Event]:
    n = 0
    for uid, items in seqs:
        for item in items:
            ts = datetime.fromtimestamp(SEQUENCE_EPOCH + n, tz=UTC)
            yield Event(user_id=uid, item_id=item, type=type, timestamp=ts)
            n += 1


def load_office_events(type: str = "purchase", limit_users: int | None = None) -> list[Event]:
    """One event per Office interaction (a 5-core review implies a purchase, hence
    ``type='purchase'`` by default; pass ``'view'`` to treat them as views).
    Timestamps are derived from sequence order (see the module docstring)."""
    return list(_events(load_office_sequences(limit_users), type))


def load_amazon_sequences(name: Name, limit_users: int | None = None) -> Sequences:
    """Beauty (22,363 users) or Sports (35,598) ``user_sequence.txt``: user -> ASINs in time order."""
    if name not in ("beauty", "sports"):
        raise ValueError(f"The 'name' parameter must be 'beauty' or 'sports'. Got {name!r} instead.")
    path = dataset_file("rec", f"amazon-{name}", "user_sequence.txt")
    data = read_sequences(path, "sequences", limit=limit_users)
    ids = data.item_ids
    return Sequences.from_lists(data.user_ids, [[ids[j] for j in seq] for seq in data.sequences])


def iter_amazon_events(
    name: Name, type: str = "purchase", limit_users: int | None = None
) -> Iterator[Event]:
    """Beauty/Sports interactions as events, streamed (300k objects would not fit a list
    cheaply). Timestamps are derived from sequence order (see the module docstring)."""
    return _events(load_amazon_sequences(name, limit_users), type)
