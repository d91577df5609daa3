"""Sessions: stored under the home with expiry, erased with their user."""

from __future__ import annotations

import stat

import pytest

from shopsense.assist import DialogueState, SessionStore, delete_user_sessions
from shopsense.errors import ValidationError


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_state_round_trips_and_expires(tmp_path):  # type: ignore[no-untyped-def]
    clock = Clock()
    store = SessionStore(tmp_path / "s.sqlite3", ttl_s=60, clock=clock)
    st = DialogueState(query="printer", constraints={"brand": "HP", "price_max": 99.5}, shown=["1", "2"], focus="2")
    store.put("abc", st)
    assert store.get("abc") == st
    clock.t += 59
    assert store.get("abc") is not None
    store.put("abc", st)  # a turn renews the session
    clock.t += 59
    assert store.get("abc") == st
    clock.t += 61
    assert store.get("abc") is None and len(store) == 0
    assert store.get("never") is None


def test_file_is_private_and_ids_are_checked(tmp_path):  # type: ignore[no-untyped-def]
    store = SessionStore(tmp_path / "a" / "s.sqlite3")
    store.put("x", DialogueState())
    assert stat.S_IMODE((tmp_path / "a" / "s.sqlite3").stat().st_mode) == 0o600
    for bad in ("", "x" * 129, "a\nb", 5):
        with pytest.raises(ValidationError, match="session_id"):
            store.put(bad, DialogueState())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ttl_s"):
        SessionStore(tmp_path / "b.sqlite3", ttl_s=0)


def test_user_id_is_kept_only_when_given_and_erased_with_the_user(tmp_path):  # type: ignore[no-untyped-def]
    store = SessionStore(tmp_path / "s.sqlite3")
    store.put("s1", DialogueState(query="a"), user_id="alice")
    store.put("s1", DialogueState(query="b"))  # a later anonymous turn keeps the link
    store.put("s2", DialogueState(query="c"), user_id="alice")
    store.put("s3", DialogueState(query="d"))
    assert store.user_of("s1") == "alice" and store.user_of("s3") is None
    assert store.delete_user("alice") == 2
    assert store.get("s1") is None and store.get("s2") is None and store.get("s3") is not None
    store.close()
    assert delete_user_sessions(tmp_path / "s.sqlite3", "alice") == 0
    assert delete_user_sessions(tmp_path / "none.sqlite3", "alice") == 0
    assert not (tmp_path / "none.sqlite3").exists()


def test_engine_delete_user_erases_the_users_sessions(tmp_path):  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    with Engine(tmp_path / "home") as eng:
        assert eng.delete_user("bob")["assistant_sessions"] == 0  # no session file yet: none created
        assert not eng.paths.assistant_sessions.exists()
        store = SessionStore(eng.paths.assistant_sessions)
        store.put("bob-1", DialogueState(query="mouse"), user_id="bob")
        store.put("anon", DialogueState(query="mouse"))
        removed = eng.delete_user("bob")
        assert removed["assistant_sessions"] == 1 and "events" in removed
        assert store.get("bob-1") is None and store.get("anon") is not None
