"""RunConfig: a profile plus `--set` overrides, checked once by the profile's own checks, and
the stage configs built from it."""

import dataclasses

import pytest

from agentr_lib import profiles, run_config
from agentr_lib.evaluate import EvalConfig
from agentr_lib.mcts import MCTSConfig
from agentr_lib.profiles import ProfileError, UnknownKey, load_profile
from agentr_lib.revision import RevisionSettings
from agentr_lib.run_config import RunConfig, load_run_config, parse_sets
from agentr_lib.train import SFTConfig


def test_set_values_are_yaml_and_land_where_the_yaml_key_would():
    sets = parse_sets(["mcts.simulations=4", "eval.split=val", "methods=[agent_r, good_only]",
                       "eval.max_turns={textcraft: 12}", "revision.max_pairs_per_tree=null", "sft.lora=true"])
    assert sets == {"mcts.simulations": 4, "eval.split": "val", "methods": ["agent_r", "good_only"],
                    "eval.max_turns": {"textcraft": 12}, "revision.max_pairs_per_tree": None, "sft.lora": True}
    config = load_run_config("tiny", sets)
    tiny = load_profile("tiny")
    assert config.value("mcts.simulations") == 4 and config.value("eval.split") == "val"
    assert config.settings["methods"] == ["agent_r", "good_only"] and config.overrides == sets
    assert config.value("mcts.max_depth") == tiny["mcts"]["max_depth"], "a key not set keeps the profile's value"
    assert config.name == "tiny" and load_run_config("tiny").settings == tiny, "no --set: the profile itself"


def test_the_same_yaml_key_in_a_file_and_in_a_set_gives_the_same_run(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("mcts:\n  simulations: 3\neval:\n  split: val\n")
    from_file = load_run_config(path).settings
    from_sets = load_run_config("tiny", {"mcts.simulations": 3, "eval.split": "val"}).settings
    assert from_file["mcts"]["simulations"] == from_sets["mcts"]["simulations"] == 3
    assert from_file["eval"] == {**profiles.DEFAULTS["eval"], "split": "val"}


def test_an_unknown_key_names_it_and_the_nearest_valid_ones():
    with pytest.raises(UnknownKey) as err:
        load_run_config("tiny", {"mcts.simulatons": 4})
    message = str(err.value)
    assert message.startswith(str(profiles.PROFILES_DIR / "tiny.yaml")) and "--set mcts.simulatons: unknown key" in message
    assert "nearest valid keys: mcts.simulations" in message and not message.startswith("'"), message
    assert isinstance(err.value, KeyError), "an unknown key is a KeyError, as in a profile file"
    with pytest.raises(UnknownKey, match="nearest valid keys: eval.split"):
        load_run_config("tiny", {"evals.split": "val"})
    with pytest.raises(UnknownKey, match="nearest valid keys: sft.epochs"):
        load_run_config("tiny", {"sft.epoch": 2})


@pytest.mark.parametrize("key, value, expected", [
    ("mcts.simulations", "four", "an integer >= 1"),
    ("eval.split", "dev", "one of ['test', 'val']"),
    ("revision.alpha", [0.5], "a list of 3 numbers"),
    ("envs", ["textcraft", "textcraft"], "a non-empty list of distinct names"),
    ("sft.learning_rate", 0, "a number > 0"),
])
def test_a_wrong_value_names_file_key_value_and_expectation_as_a_profile_file_does(key, value, expected, tmp_path):
    with pytest.raises(ProfileError) as err:
        load_run_config("tiny", {key: value})
    message = str(err.value)
    assert "tiny.yaml with --set" in message and expected in message, message
    section, _, name = key.rpartition(".")
    with pytest.raises(ProfileError) as from_load:
        load_profile("tiny", {section: {name: value}} if section else {key: value})
    said = str(from_load.value)
    assert message[message.index(f": {key}"):] == said[said.index(f": {key}"):], "the same check, the same words"


def test_the_run_is_validated_once(monkeypatch):
    calls = []
    real = run_config.validate_profile
    monkeypatch.setattr(run_config, "validate_profile", lambda *args: calls.append(args) or real(*args))
    load_run_config("smoke", {"iterations": 1, "mcts.simulations": 2})
    assert len(calls) == 1


def test_fewer_iterations_cut_the_alpha_list_and_say_so():
    config = load_run_config("tiny", {"iterations": 2})
    assert config.value("revision.alpha") == load_profile("tiny")["revision"]["alpha"][:2]
    assert len(config.notes) == 1 and "revision.alpha cut to its first values" in config.notes[0]
    given = load_run_config("tiny", {"iterations": 1, "revision.alpha": 0.3})
    assert given.value("revision.alpha") == 0.3 and given.notes == (), "an alpha given with it is kept as given"
    with pytest.raises(ProfileError, match="a list of 4 numbers"):
        load_run_config("tiny", {"iterations": 4})


def test_bad_set_arguments_say_what_is_expected():
    with pytest.raises(ProfileError, match="expected KEY=VALUE"):
        parse_sets(["mcts.simulations"])
    with pytest.raises(ProfileError, match="not valid YAML"):
        parse_sets(["methods=[agent_r"])
    with pytest.raises(ProfileError, match="given twice"):
        parse_sets(["eval.split=val", "eval.split=test"])
    assert parse_sets(["eval.split=val", "eval.split=val"]) == {"eval.split": "val"}


def test_stage_configs_take_every_key_the_run_sets():
    config = load_run_config("tiny", {"mcts.simulations": 3, "sft.epochs": 2, "eval.max_new_tokens": 40,
                                      "revision.beta": 0.1})
    search = config.stage(MCTSConfig, seed=5)
    assert (search.simulations, search.seed, search.max_depth) == (3, 5, config.value("mcts.max_depth"))
    assert config.stage(SFTConfig).epochs == 2
    assert config.stage(EvalConfig).max_new_tokens == 40
    revision = config.stage(RevisionSettings, method="good_only", alpha=config.alpha(1))
    assert (revision.beta, revision.method, revision.alpha) == (0.1, "good_only", config.value("revision.alpha")[0])
    for setting in profiles.SETTINGS:  # every owned key reaches its field
        if setting.owner is MCTSConfig:
            assert getattr(search, setting.field_name) == config.value(setting.key), setting.key
    with pytest.raises(TypeError, match=r"simulations come from the run's settings; change them with --set "
                                        r"\(keys mcts.simulations\)"):
        config.stage(MCTSConfig, simulations=9)

    @dataclasses.dataclass
    class Unowned:
        x: int = 0

    with pytest.raises(TypeError, match="Unowned owns no profile key; the stage configs are EvalConfig, MCTSConfig"):
        config.stage(Unowned)


def test_a_loaded_profile_is_a_run_without_overrides():
    tiny = load_profile("tiny")
    config = RunConfig.from_settings(tiny)
    assert config.settings is tiny and config.overrides == {} and config.name == "tiny"
