"""Profiles are the named recipes behind the pipeline: they must load, and a typo must fail loudly."""

import pytest

from agentr_lib.profiles import alpha_for, available_profiles, load_profile, per_env


def test_every_shipped_profile_loads_and_documents_its_hardware_and_time():
    names = available_profiles()
    assert {"smoke", "tiny", "consumer-gpu", "paper"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile["name"] == name
        assert profile["hardware"] and profile["expected_minutes"], name
        assert set(profile["methods"]) <= {"agent_r", "direct_revision", "good_only"}


def test_misspelled_key_is_rejected_with_the_valid_keys_listed(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("mcts:\n  simulatons: 3\n")
    with pytest.raises(KeyError) as err:
        load_profile(path)
    message = str(err.value)
    assert "simulatons" in message and "simulations" in message and "n_gen" in message


def test_misspelled_top_level_key_is_rejected(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("iteration: 2\n")
    with pytest.raises(KeyError, match="iterations"):
        load_profile(path)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match="smoke"):
        load_profile("no-such-profile")


def test_alpha_schedule_and_per_env_values():
    profile = load_profile("tiny")
    assert [alpha_for(profile, k) for k in (1, 2, 3, 4)] == [0.5, 0.7, 1.0, 1.0]
    paper = load_profile("paper")
    assert per_env(paper["mcts"]["tasks_per_env"], "webshop") == 300
    assert per_env(paper["eval"]["tasks_per_env"], "textcraft") == 100
    assert per_env(7, "anything") == 7
    with pytest.raises(KeyError, match="alfworld"):
        per_env({"webshop": 1}, "alfworld")
