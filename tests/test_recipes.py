"""The one recipe shape: the registry, --set overrides, the cache, determinism under a steps budget, recipes read
back from checkpoints, the task definitions, and `list` / `leaderboard --quick` on the command line."""
import dataclasses
import json

import pytest
import torch

from cli_run import run_cli
from minivlm.__main__ import main
from minivlm.recipes import cache, registry
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.lm import LMRecipe
from minivlm.recipes.recipe import FAMILIES, from_settings, override, save, train
from minivlm.recipes.tasks import TASKS, score
from minivlm.train import load_checkpoint

SYSTEMS = ("clip", "lm", "clipcap", "llava", "flamingo", "judge", "vq", "dalle", "cm3")
TINY_CLIP = CLIPRecipe(n_train=256)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVLM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registry_holds_every_system_with_a_family_tasks_and_a_steps_budget():
    known = registry.recipes()
    assert set(SYSTEMS) <= set(known)
    for name, cls in known.items():
        recipe = cls()
        assert cls.family in FAMILIES, name
        assert cls.tasks and set(cls.tasks) <= set(TASKS), name
        assert isinstance(recipe.steps, int) and recipe.steps > 0, name
        assert dataclasses.is_dataclass(recipe) and cls.__dataclass_params__.frozen, name
        for role, (prereq, steps) in recipe.prerequisites().items():
            assert prereq.name in known and steps > 0, (name, role)


def test_get_refuses_an_unknown_system_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"model: expected one of .*clip.*, got 'clap'"):
        registry.get("clap")


def test_override_type_checks_each_field_and_records_what_was_set():
    recipe, changes = override(CLIPRecipe(), ["lr=1e-3", "steps=20", "p_two=0.25"])
    assert (recipe.lr, recipe.steps, recipe.p_two) == (1e-3, 20, 0.25)
    assert changes == {"lr": 1e-3, "steps": 20, "p_two": 0.25}
    assert CLIPRecipe().lr == 3e-3  # the registered defaults are untouched


@pytest.mark.parametrize("pair, message", [
    ("steps=ten", r"--set steps=ten: expected int, got 'ten'"),
    ("lr", r"--set: expected field=value, got 'lr'"),
    ("bogus=1", r"--set bogus: not a setting of clip; its settings are: .*batch_size.*p_two"),
])
def test_override_refuses_bad_pairs_clearly(pair, message):
    with pytest.raises(ValueError, match=message):
        override(CLIPRecipe(), [pair])


def test_a_recipe_reads_back_from_its_settings_and_refuses_unknown_fields():
    recipe = dataclasses.replace(TINY_CLIP, lr=1e-3)
    assert from_settings(CLIPRecipe, recipe.settings(), "x.pt") == recipe
    with pytest.raises(ValueError, match=r"'x.pt' has recipe settings this version does not know: \['warp'\]"):
        from_settings(CLIPRecipe, {**recipe.settings(), "warp": 9}, "x.pt")


def test_same_seed_and_steps_give_identical_weights_different_seed_does_not(isolated_cache):
    runs = [train(TINY_CLIP, steps=3, seed=s) for s in (0, 0, 1)]
    weights = [list(r.model.state_dict().values()) for r in runs]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], weights[1]))
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[2]))
    assert runs[0].stats["samples_seen"] == 3 * TINY_CLIP.batch_size and runs[0].stats["steps"] == 3


def test_the_cache_trains_once_and_keys_on_settings_seed_steps_and_fast_mode(isolated_cache, monkeypatch):
    monkeypatch.setenv("MINIVLM_FAST", "0")
    first = cache.obtain(TINY_CLIP, 2, seed=0)
    path = cache.path_of(TINY_CLIP, 0, 2)
    assert path.is_file() and len(list(isolated_cache.iterdir())) == 1
    again = cache.obtain(TINY_CLIP, 2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert len(list(isolated_cache.iterdir())) == 1  # read, not trained again
    keys = {cache.key(TINY_CLIP, 0, 2), cache.key(TINY_CLIP, 1, 2), cache.key(TINY_CLIP, 0, 3),
            cache.key(dataclasses.replace(TINY_CLIP, p_two=0.3), 0, 2)}
    monkeypatch.setenv("MINIVLM_FAST", "1")
    keys.add(cache.key(TINY_CLIP, 0, 2))
    assert len(keys) == 5


def test_a_checkpoint_keeps_the_whole_recipe_and_what_was_overridden(tmp_path, isolated_cache):
    recipe = dataclasses.replace(LMRecipe(n_train=256), lr=1e-3)
    run = train(recipe, steps=2, seed=3)
    save(recipe, run, tmp_path / "lm.pt", {"lr": 1e-3})
    ckpt = load_checkpoint(tmp_path / "lm.pt", "lm")
    assert from_settings(LMRecipe, ckpt["extra"]["recipe"], "lm.pt") == recipe
    assert ckpt["extra"]["overrides"] == {"lr": 1e-3} and ckpt["seed"] == 3
    assert ckpt["train_config"]["lr"] == 1e-3 and ckpt["train_config"]["steps"] == 2


def test_score_reads_each_task_and_names_a_missing_metric():
    m = {"zero_shot_acc": 0.5, "fewshot_acc": {"0": 0.1, "4": 0.9}, "vqa_acc_by_type": {"yes/no": 0.7}}
    assert score(("zero_shot", "fewshot_4", "vqa_yesno"), m) == {"zero_shot": 0.5, "fewshot_4": 0.9, "vqa_yesno": 0.7}
    with pytest.raises(ValueError, match=r"'i2t_r1' needs the metric 'i2t_r1'"):
        score(("i2t_r1",), m)
    with pytest.raises(ValueError, match=r"'bleu' is no leaderboard task"):
        score(("bleu",), m)


def test_list_shows_every_system_with_family_budget_and_prerequisites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in SYSTEMS:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "contrastive" in out and "3,750 steps" in out and "clip (7,500 steps)" in out


def test_train_records_set_overrides_and_refuses_unknown_fields(tmp_path, isolated_cache, capsys):
    out = tmp_path / "run"
    assert main(["train", "lm", "--steps", "2", "--set", "n_train=256", "--set", "lr=1e-3", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overrides"] == {"n_train": 256, "lr": 1e-3} and metrics["steps"] == 2
    assert load_checkpoint(out / "lm.pt", "lm")["extra"]["overrides"] == {"n_train": 256, "lr": 1e-3}
    capsys.readouterr()
    assert main(["train", "lm", "--steps", "2", "--set", "warp=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set warp: not a setting of lm; its settings are:" in err[0] and "p_two" in err[0]
    assert main(["train", "clip", "--steps", "2", "--mapper", "mlp"]) == 2
    assert capsys.readouterr().err.strip() == "minivlm: error: --mapper: not a setting of clip"
    assert main(["train", "clip", "--steps", "2", "--vq", "x.pt"]) == 2
    assert "--vq: clip builds on no vq" in capsys.readouterr().err


def test_quick_leaderboard_scores_every_system_on_every_task_it_declares(tmp_path, isolated_cache):
    result = run_cli("leaderboard", "--quick", "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / f"leaderboard_{'cuda' if torch.cuda.is_available() else 'cpu'}.json").read_text())
    assert set(SYSTEMS) <= set(report["systems"]) and report["quick"] and report["seeds"] == [0]
    for name, row in report["systems"].items():
        assert set(row["scores"]) == set(registry.get(name).tasks), name
        for task, values in row["scores"].items():
            assert len(values) == 1 and values[0] == values[0], (name, task)  # a number, not NaN
    md = next(tmp_path.glob("leaderboard_*.md")).read_text()
    assert all(f"| {name} |" in md for name in SYSTEMS)
    assert next(tmp_path.glob("leaderboard_*.png")).read_bytes()[:4] == b"\x89PNG"
