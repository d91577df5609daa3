"""`shopsense demo` gives the sample shop its policies, so the storefront's assistant can
quote them; a shop's own policies folder is never overwritten."""

from __future__ import annotations

from shopsense.assist import policy_files
from shopsense.cli import copy_demo_policies
from shopsense.home import Home


def test_demo_home_gets_the_sample_policies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Home(tmp_path / "home")
    assert copy_demo_policies(paths.policies)
    files = policy_files(paths.policies)
    assert [f.name for f in files] == ["shop_policies.md"]
    assert "30 days of delivery" in files[0].read_text()


def test_a_shops_own_policies_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Home(tmp_path / "home")
    paths.policies.mkdir(parents=True)
    (paths.policies / "returns.md").write_text("# Returns\n\nNo returns after 14 days.\n")
    assert not copy_demo_policies(paths.policies)
    assert [f.name for f in policy_files(paths.policies)] == ["returns.md"]
