"""TrainConfig's sections: each field in one, each section checked, TOML tables by section."""

import dataclasses

import pytest

from lom_pyro.training.build import config_of
from lom_pyro.training.config import SECTIONS, TrainConfig, config_from_preset, read_config_file


def test_the_sections_hold_every_field_once_in_order():
    names = [n for section in SECTIONS.values() for n in section]
    assert names == [f.name for f in dataclasses.fields(TrainConfig)]
    config = config_from_preset("quickstart")
    assert config.section("optimisation") == {"batch_size": 16, "lr": 1e-3, "warmup": 200, "decay_every": 0,
                                              "grad_clip": 5.0}
    with pytest.raises(ValueError, match="section must be one of"):
        config.section("optimiser")


@pytest.mark.parametrize("field, value, message", [
    ("scene_prior", "flow", "scene_prior must be one of"),       # model
    ("grad_clip", 0.0, "grad_clip must be a positive number"),   # optimisation
    ("lom_beta_max", 0.5, "lom_beta_max must be a finite number >= 1"),   # geco
    ("steps", 0, "steps must be >= 1"),                          # schedule
    ("amp", "fp8", "amp must be one of"),                        # run
])
def test_each_section_is_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        config_from_preset("quickstart", **{field: value})


def test_a_check_across_sections():
    with pytest.raises(ValueError, match="needs lom=True and orderless_checkpoint or orderless_steps"):
        config_from_preset("quickstart", lom_decoder_init="orderless")


def test_a_config_file_may_group_its_keys_by_section(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('steps = 5\n[optimisation]\nlr = 2e-3\n[geco]\ngoal = -1.5\n'
                    '[model]\norderless = "emorl"\n[model.lom_kwargs]\nscene_dim = 8\n')
    values = read_config_file(path)
    assert values == {"steps": 5, "lr": 2e-3, "goal": -1.5, "orderless": "emorl", "lom_kwargs": {"scene_dim": 8}}
    assert config_from_preset("quickstart", **values).section("geco")["goal"] == -1.5


@pytest.mark.parametrize("text, message", [
    ("[geco]\nlr = 1e-3\n", r"lr belongs in \[optimisation\], not \[geco\]"),
    ("lr = 1e-3\n[optimisation]\nlr = 2e-3\n", r"lr is set twice, at the top and in \[optimisation\]"),
    ("geco = 3\n", r"\[geco\] must be a table"),
    ("[run]\nspeed = 3\n", "unknown keys"),
    ('[optimisation]\nlr = "fast"\n', "lr must be a number"),
])
def test_a_misplaced_key_is_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_config_file(path)
    assert str(path) in str(err.value)


def test_configs_stored_under_the_old_free_bits_names_still_read(tmp_path):
    """The scene free bits are nats per scene dimension; their fields were renamed so that
    they no longer share a name with the LOM's ``scene_free_bits`` (nats). Checkpoints,
    pretrained files and --config files written before still read, as the same values."""
    path = tmp_path / "old.toml"
    path.write_text("[schedule]\nscene_free_bits = 0.5\nscene_free_bits_final = 0.1\n")
    assert read_config_file(path) == {"scene_free_bits_per_dim": 0.5, "scene_free_bits_final_per_dim": 0.1}
    stored = {**dataclasses.asdict(config_from_preset("quickstart")), "scene_free_bits": 0.5}
    del stored["scene_free_bits_per_dim"]
    config = config_of({"config": stored}, "old.pt")
    assert (config.scene_free_bits_per_dim, config.scene_free_bits_final_per_dim) == (0.5, 0.167)
    with pytest.raises(ValueError, match="sets both scene_free_bits and scene_free_bits_per_dim"):
        config_from_preset("quickstart", scene_free_bits=0.5, scene_free_bits_per_dim=0.5)
    with pytest.raises(ValueError, match="scene_free_bits_per_dim must be >= 0"):
        config_from_preset("quickstart", scene_free_bits_per_dim=-0.1)
