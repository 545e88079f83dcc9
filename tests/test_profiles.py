"""Profiles are the named recipes behind the pipeline: they must load, and a typo must fail loudly."""

import pytest

from agentr_lib.profiles import METHODS, ProfileError, alpha_for, available_profiles, load_profile, per_env


def test_every_shipped_profile_loads_and_documents_its_hardware_and_time():
    names = available_profiles()
    assert {"smoke", "tiny", "consumer-gpu", "paper"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile["name"] == name
        assert profile["hardware"] and profile["expected_minutes"], name
        assert set(profile["methods"]) <= set(METHODS)


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
    """One alpha per iteration from the profile's list, or one for all; per-env values from a
    mapping, and a missing env is an error naming it."""
    profile = load_profile("tiny", {"revision": {"alpha": [0.1, 0.2, 0.3]}})
    assert [alpha_for(profile, k) for k in (1, 2, 3)] == [0.1, 0.2, 0.3]
    assert alpha_for(load_profile("tiny", {"revision": {"alpha": 0.4}}), 3) == 0.4
    assert per_env({"webshop": 300, "textcraft": 100}, "webshop") == 300
    assert per_env(7, "anything") == 7
    with pytest.raises(KeyError, match="alfworld"):
        per_env({"webshop": 1}, "alfworld")


@pytest.mark.parametrize("override, key, expected", [
    ({"mcts": {"simulations": "eight"}}, "mcts.simulations = 'eight'", "an integer >= 1"),
    ({"mcts": {"tasks_per_env": -3}}, "mcts.tasks_per_env = -3", "an integer >= 1"),
    ({"mcts": {"tasks_per_env": {"webshop": 3}}}, "mcts.tasks_per_env", "missing ['textcraft']"),
    ({"mcts": {"temperature": -1}}, "mcts.temperature = -1", "a number >= 0"),
    ({"iterations": 0}, "iterations = 0", "an integer >= 1"),
    ({"iterations": -1}, "iterations = -1", "an integer >= 1"),
    ({"iterations": True}, "iterations = True", "an integer >= 1"),
    ({"envs": ["textcraft", "minecraft"]}, "envs = ['textcraft', 'minecraft']", "distinct names from"),
    ({"envs": []}, "envs = []", "a non-empty list"),
    ({"methods": ["agent_r", "eto"]}, "methods", "'good_only'"),
    ({"model": "./no/such/model"}, "model = './no/such/model'", "an existing local model folder"),
    ({"revision": {"alpha": [0.5]}}, "revision.alpha = [0.5]", "a list of 3 numbers"),
    ({"revision": {"alpha": []}}, "revision.alpha = []", "a list of 3 numbers"),
    ({"revision": {"alpha": [0.5, 0.7, 1.0, 1.0]}}, "revision.alpha", "a list of 3 numbers"),
    ({"revision": {"verifier": "llm"}}, "revision.verifier = 'llm'", "['value', 'value-no-good', 'value-seen', 'model']"),
    ({"sft": {"learning_rate": 0}}, "sft.learning_rate = 0", "a number > 0"),
    ({"sft": {"general_data": "/no/chat.jsonl"}}, "sft.general_data", "an existing local"),
    ({"eval": {"max_turns": "ten"}}, "eval.max_turns = 'ten'", "an integer >= 1"),
    ({"backend": "tgi"}, "backend = 'tgi'", "one of"),
    ({"eval": {"split": "dev"}}, "eval.split = 'dev'", "['test', 'val']"),
    ({"envs": ["webshop"], "eval": {"split": "val"}}, "eval.split = 'val'", "only ['textcraft'] have a validation split"),
    ({"mcts": {"task_split": "val"}}, "mcts.task_split = 'val'", "['train', 'search']"),
    ({"envs": ["webshop"], "mcts": {"task_split": "search"}}, "mcts.task_split = 'search'", "only ['textcraft'] have a search split"),
])
def test_bad_values_fail_at_load_naming_key_value_and_expectation(override, key, expected):
    """Regression: these passed --dry-run and failed only after set-up and the base
    evaluation, as tracebacks that named no key (or were silently padded or cut)."""
    with pytest.raises(ProfileError) as err:
        load_profile("tiny", override)
    message = str(err.value)
    assert "tiny.yaml" in message and key in message and expected in message, message


def test_a_bad_value_in_a_profile_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("mcts:\n  batch_trees: 0\n")
    with pytest.raises(ProfileError, match=r"mine.yaml: mcts.batch_trees = 0: expected an integer >= 1"):
        load_profile(path)


def test_gpu_rehearsal_keeps_every_switch_of_consumer_gpu():
    """The rehearsal (CI's run of the GPU path) differs from consumer-gpu only in the keys
    REHEARSAL_CHANGES names, each for its stated reason; every other key is the same."""
    from agentr_lib.profiles import REHEARSAL_CHANGES, SETTINGS, value_of

    rehearsal, gpu = load_profile("gpu-rehearsal"), load_profile("consumer-gpu")
    differ = {s.key for s in SETTINGS if value_of(rehearsal, s.key) != value_of(gpu, s.key)}
    assert differ == set(REHEARSAL_CHANGES), (sorted(differ - set(REHEARSAL_CHANGES)),
                                              sorted(set(REHEARSAL_CHANGES) - differ))
    # what the rehearsal is for, spelled out
    assert rehearsal["backend"] == gpu["backend"] == "auto"
    assert rehearsal["sft"]["lora"] and (rehearsal["sft"]["lora_r"], rehearsal["sft"]["lora_alpha"]) == (16, 32)
    assert rehearsal["revision"]["verifier"] == "model" and rehearsal["eval"]["max_turns"] == 40
    assert rehearsal["envs"] == ["textcraft", "sciworld", "webshop"] and rehearsal["single_task"]
    assert rehearsal["model"] == "micro-fluent" and rehearsal["iterations"] >= 2
