"""Policy passages: chunked under their headings, retrieved with BM25 (+ the encoder in
the assistant tests), quoted verbatim, saved under the home and rebuilt on change."""

from __future__ import annotations

import re
import shutil

import pytest

from shopsense.assist import (
    PolicyIndex,
    chunk_policy,
    policy_files,
    policy_index_for,
    render_policy_html,
)

from .conftest import POLICY

TEXT = POLICY.read_text()


def test_passages_sit_under_their_headings():
    ps = chunk_policy(POLICY.name, TEXT)
    heads = {p.heading for p in ps}
    assert {"Shipping and delivery", "Returns and refunds", "Warranty", "Payment",
            "Contact customer service"} <= heads
    for p in ps:
        assert p.text.strip() and len(p.text) <= 900
        assert p.link == f"/assistant/policies/{POLICY.name}#{p.anchor}"
        for para in p.text.split("\n\n"):
            assert " ".join(para.split()) in " ".join(TEXT.split())
    # the page the links open has an element with each anchor
    html = render_policy_html(POLICY.name, TEXT)
    ids = set(re.findall(r"id='([^']+)'", html))
    assert {p.anchor for p in ps if p.heading != "Shop policies"} <= ids


def test_a_text_file_without_headings_is_one_section():
    ps = chunk_policy("faq.txt", "We are open on Saturdays.\n\nGift wrapping costs 2 USD.")
    assert [p.heading for p in ps] == ["Faq"] and "Gift wrapping" in ps[0].text


@pytest.mark.parametrize("question, heading", [
    ("how long does delivery take", "Shipping and delivery"),
    ("can I return opened toner", "Returns and refunds"),
    ("how do I get a refund", "Returns and refunds"),
    ("is there a warranty on electronics", "Warranty"),
    ("can I pay by invoice", "Payment"),
    ("do you accept american express", "Payment"),
    ("can I cancel my order", "Order changes and cancellations"),
])
def test_bm25_finds_the_section(question, heading):  # type: ignore[no-untyped-def]
    idx = PolicyIndex().fit(chunk_policy(POLICY.name, TEXT))
    hits = idx.search(question, k=3)
    assert hits and hits[0][0].heading == heading, [(p.heading, s) for p, s in hits]


def test_nothing_matches_an_unrelated_question():
    idx = PolicyIndex().fit(chunk_policy(POLICY.name, TEXT))
    assert idx.search("zxqv") == []


def test_index_is_saved_and_rebuilt_when_a_file_changes(tmp_path):  # type: ignore[no-untyped-def]
    folder, index_dir = tmp_path / "policies", tmp_path / "assistant" / "policy_index"
    folder.mkdir()
    shutil.copy(POLICY, folder / POLICY.name)
    (folder / "notes.json").write_text("{}")  # not a policy file
    assert [p.name for p in policy_files(folder)] == [POLICY.name]
    a = policy_index_for(folder, index_dir)
    assert (index_dir / "manifest.json").exists() and len(a) > 5
    b = policy_index_for(folder, index_dir)  # loaded, same passages
    assert [p.id for p in b.passages_] == [p.id for p in a.passages_]
    (folder / "gifts.md").write_text("# Gift cards\n\nGift cards never expire.\n")
    c = policy_index_for(folder, index_dir)
    assert len(c) == len(a) + 1 and c.search("do gift cards expire")[0][0].heading == "Gift cards"
