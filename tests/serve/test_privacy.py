"""The home's pseudonym secret (serve/_privacy.py): every process that starts on a home names a
user by the same pseudonym, also when they all start at once on a home without a secret (a
server's workers on a new home). They did not: each wrote its own secret over the others', and
the cross-worker test of cached recommendations failed now and then (issue 15)."""

from __future__ import annotations

import threading

from shopsense.serve import Pseudonymizer


def test_processes_starting_together_on_a_new_home_agree_on_the_secret(tmp_path):  # type: ignore[no-untyped-def]
    for attempt in range(40):
        path = tmp_path / f"home{attempt}" / ".log_secret"
        barrier = threading.Barrier(8)
        names: list[str] = []

        def start(barrier: threading.Barrier, path=path, names=names) -> None:  # type: ignore[no-untyped-def]
            barrier.wait()
            names.append(Pseudonymizer(path)("shopper-1"))

        threads = [threading.Thread(target=start, args=(barrier,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(names) == 8 and len(set(names)) == 1, (attempt, names)
        assert Pseudonymizer(path)("shopper-1") == names[0]  # and a later start too
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in path.parent.iterdir()] == [".log_secret"]  # no temp file left


def test_a_secret_in_place_is_kept(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / ".log_secret"
    path.write_text("ab" * 32)
    before = Pseudonymizer(path)("shopper-1")
    assert Pseudonymizer(path)("shopper-1") == before and path.read_text() == "ab" * 32
    assert Pseudonymizer(path)("") == "-"
