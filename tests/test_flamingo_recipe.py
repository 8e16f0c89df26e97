"""The Flamingo recipe: the mixture's weighted sum (one batch of each source per update), the position-aware
resampler and reading-order captions, the gates' own learning rate, few-shot prompts and the choice of their
examples (random, RICES), the interleaved prompt files of `fewshot`, and the CLI (`train flamingo`, `eval
flamingo`, `fewshot`) with its bad inputs."""
import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minivlm.__main__ import main
from minivlm.data import Tokenizer, preprocess
from minivlm.data.documents import flamingo_tokenizer, make_documents
from minivlm.models.clip import CLIP
from minivlm.models.flamingo import Flamingo
from minivlm.recipes.clip import clip_config
from minivlm.recipes.clip import CLIPRecipe
from minivlm.recipes.fewshot import choose_examples, continue_text, fewshot_prompts, media_tensor
from minivlm.recipes.flamingo import (SOURCES, FlamingoRecipe, Mixture, flamingo_config, make_sources,
                                      mixture_batches, parse_prompt)
from minivlm.recipes.lm import pretrain_steps
from minivlm.train import TrainConfig, build, fit, make_optimizer, save_checkpoint

SAMPLES = Path(__file__).parent.parent / "data_samples"


@pytest.fixture(scope="module")
def tok():
    return flamingo_tokenizer()


@pytest.fixture(scope="module")
def small(tok, tiny_cfg):
    """A Flamingo over the tiny CLIP tower with a width-32 LM, its gates opened a little, and a small mixture."""
    data = FlamingoRecipe(n={s: 8 for s in SOURCES}, batch={s: 4 for s in SOURCES})
    clip = build(CLIP, tiny_cfg, seed=0)
    cfg = flamingo_config(clip, tok, data, resampler_depth=1, heads=2, init_gate=0.3)
    cfg.lm.dim, cfg.lm.heads = 32, 2
    return build(Flamingo, cfg, seed=0).eval(), data


def test_recipe_is_position_aware_and_captions_in_reading_order(small, tok):
    """The two changes behind two-object captions (recipes/flamingo.py): one resampler latent per patch with grid
    codes on its queries and keys, and two-object captions naming the left or top object first."""
    model, data = small
    assert model.cfg.resampler_positions == FlamingoRecipe().resampler_positions > 0 and model.cfg.latents == 16
    assert len(model.resampler.grid_code) == 16 and FlamingoRecipe().reading_order  # 4 × 4 patches
    captions = make_sources(dataclasses.replace(data, n={**data.n, "captions": 60}), 0, tok)["captions"]
    two = [t for (t,), (scene,) in zip(captions.targets, captions.scenes) if len(scene.objects) == 2]
    assert two and all(" to the right of " not in t and " below " not in t for t in two)
    with pytest.raises(ValueError, match=r"resampler_positions: a position-aware resampler needs one latent per "
                                         r"patch, latents = 16, got latents=8"):
        dataclasses.replace(model.cfg, latents=8)


def test_media_tensor_preprocesses_every_frame(tok):
    media = make_documents(3, 0, tok, images=2).media  # (3, 2, 1, 32, 32, 3)
    x = media_tensor(media)
    assert x.shape == (3, 2, 1, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[2, 1, 0], preprocess(media[2, 1, 0])[0])
    with pytest.raises(ValueError, match="media: expected at least one image"):
        media_tensor(media[:, :0])


def test_mixture_loss_is_the_weighted_sum_of_one_batch_per_source(small, tok):
    model, data = small
    sources = make_sources(data, 0, tok)
    batch = mixture_batches(sources, data, torch.Generator().manual_seed(0), "cpu")()
    assert [b[1].shape[1:3] for b in batch] == [(1, 1), (1, data.frames), (data.doc_images, 1), (2, 1)]
    weights = [1.0, 0.5, 2.0, 0.25]
    by_hand = sum(w * model.loss(tokens, media) for w, (tokens, media) in zip(weights, batch))
    assert torch.allclose(Mixture(model, weights).loss(*batch), by_hand)


def test_gates_get_their_own_learning_rate(small):
    model, _ = small
    mixture = Mixture(model, [1.0] * 4, gate_lr_scale=30.0)
    scaled = mixture.lr_scales()
    assert sorted(scaled) == sorted(f"model.xattn.{i}.alpha_{b}" for i in range(len(model.xattn))
                                    for b in ("xattn", "dense"))
    opt = make_optimizer(mixture, TrainConfig(steps=1))
    gates = {id(p) for n, p in mixture.named_parameters() if n in scaled}
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= gates if group["lr_scale"] == 30.0 else not ids & gates
    trained = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert trained == sum(p.numel() for p in model.parameters() if p.requires_grad)  # frozen parts stay out


def test_fit_on_the_mixture_counts_every_source_and_opens_the_gates(tiny_cfg, tok):
    data = FlamingoRecipe(n={s: 16 for s in SOURCES}, batch={s: 4 for s in SOURCES})
    clip = build(CLIP, tiny_cfg, seed=0)
    cfg = flamingo_config(clip, tok, data, resampler_depth=1, heads=2)
    cfg.lm.dim, cfg.lm.heads = 32, 2
    model = build(Flamingo, cfg, seed=0)
    batches = mixture_batches(make_sources(data, 0, tok), data, torch.Generator().manual_seed(0), "cpu")
    hist = fit(Mixture(model, [1.0] * 4, gate_lr_scale=10.0), batches, TrainConfig(steps=3, warmup_steps=1))
    assert hist.steps[-1]["samples"] == 3 * 16
    assert all(abs(g) > 0 for gates in model.gates() for g in gates.values())  # alpha left 0


def test_rices_picks_the_most_similar_examples_most_similar_last():
    pool = torch.nn.functional.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    query = pool[7] + 0.01 * pool[3]
    order = choose_examples(pool @ query, len(pool), 3, "rices", random.Random(0))
    sims = (pool @ query).tolist()
    assert order[-1] == 7 and order == sorted(sorted(range(20), key=lambda i: -sims[i])[:3], key=lambda i: sims[i])
    assert choose_examples(pool @ query, len(pool), 0, "rices", random.Random(0)) == []
    a, b = (choose_examples(None, len(pool), 4, "random", random.Random(1)) for _ in range(2))
    assert a == b and len(set(a)) == 4
    with pytest.raises(ValueError, match="how: expected 'random' or 'rices'"):
        choose_examples(pool @ query, len(pool), 2, "nearest", random.Random(0))


@pytest.mark.parametrize("how", ["random", "rices"])
def test_fewshot_prompts_put_k_examples_before_the_query(small, tok, how):
    model, _ = small
    queries, pool = make_documents(6, "q", tok, images=1), make_documents(30, "p", tok, images=1)
    for k in (0, 2):
        texts, media, answers = fewshot_prompts("colour", queries, pool, k, how, model)
        assert media.shape == (6, k + 1, 1, 32, 32, 3)
        assert all(np.array_equal(media[i, -1, 0], queries.media[i, 0, 0]) for i in range(6))  # the query is last
        assert answers == [s[0].objects[0].colour for s in queries.scenes]
        for text, row in zip(texts, media):
            find = lambda img: next(j for j in range(len(pool)) if np.array_equal(pool.media[j, 0, 0], img))
            shots = [find(img) for img in row[:-1, 0]]
            assert text == " ".join([f"<image> {pool.scenes[j][0].objects[0].colour} ." for j in shots] + ["<image>"])


def test_continue_text_needs_prompts_of_one_length(small, tok):
    model, _ = small
    media = make_documents(2, 0, tok, images=1).media
    with pytest.raises(ValueError, match="texts: expected prompts of one length"):
        continue_text(model, tok, ["<image>", "<image> red ."], media)
    with pytest.raises(ValueError, match="unknown word 'banana'"):
        continue_text(model, tok, ["banana <image>"] * 2, media)
    said = continue_text(model, tok, ["<image>"] * 2, media, max_new=3)
    assert said == continue_text(model, tok, ["<image>"] * 2, media, max_new=3) and len(said) == 2


def test_parse_prompt_turns_markers_into_placeholders(tmp_path):
    text, paths = parse_prompt("<image:a.png> red . <image: sub/b.png > blue . <image:a.png>\n", tmp_path)
    assert text == "<image> red . <image> blue . <image>"
    assert paths == [tmp_path / "a.png", tmp_path / "sub/b.png", tmp_path / "a.png"]
    with pytest.raises(ValueError, match="prompt: write each image as <image:path.png>"):
        parse_prompt("<image> red", tmp_path)
    with pytest.raises(ValueError, match="prompt: expected at least one <image:path.png> marker"):
        parse_prompt("red . blue .", tmp_path)


# --- the command line: one 2-step run for the module, on an untrained CLIP checkpoint the test writes ---

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-flamingo")
    tokenizer = Tokenizer()
    clip = build(CLIP, clip_config(tokenizer), seed=0)
    save_checkpoint(tmp / "clip.pt", clip, "clip", clip.cfg, TrainConfig(steps=1), extra={"vocab": tokenizer.vocab})
    assert main(["train", "flamingo", "--clip", str(tmp / "clip.pt"), "--steps", "2", "--seed", "1",
                 "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_the_lm_is_pretrained_for_steps_not_seconds():
    # a frozen LM trained longer is harder to steer, so a faster machine must not pretrain it more
    steps = FlamingoRecipe(lm_steps=300).lm_steps
    assert pretrain_steps(TrainConfig(seconds=60.0), steps) == 300
    assert pretrain_steps(TrainConfig(seconds=5.0), steps) == 300
    assert pretrain_steps(TrainConfig(steps=10_000), steps) == 300
    assert pretrain_steps(TrainConfig(steps=200), steps) == 20 and pretrain_steps(TrainConfig(steps=2), steps) == 1


def test_a_budget_as_long_as_the_pretraining_pretrains_in_full(tiny_cfg, tok):
    """Only a budget shorter than `lm_steps` is a smoke test (a tenth of it); the notebook's 300-step comparison
    run must pretrain its LM the same 300 steps as the 1,100-step run it is compared with."""
    from minivlm.recipes.flamingo import train_flamingo
    data = FlamingoRecipe(n={s: 40 for s in SOURCES}, batch={s: 4 for s in SOURCES}, lm_steps=20)  # 160 texts: one LM batch
    clip = build(CLIP, tiny_cfg, seed=0)
    for steps, want in ((20, 20), (10, 1)):
        _, _, stats = train_flamingo(TrainConfig(steps=steps, warmup_steps=1), clip, tok, data)
        assert stats["lm_pretrain_steps"] == want


def test_train_writes_the_metrics_the_issue_names(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    assert m["steps"] == 2 and m["seed"] == 1 and m["samples_seen"] == 2 * sum(FlamingoRecipe().batch.values())
    for key in ("caption_em_1obj", "caption_em_2obj", "heldout_em", "video_em", "pair_acc"):
        assert 0 <= m[key] <= 1, key
    assert list(m["fewshot_acc"]) == ["0", "1", "2", "4"] == list(m["fewshot_acc_rices"])
    assert len(m["gates"]) == 2 and set(m["gates"][0]) == {"xattn", "dense"}
    assert m["lm_pretrain_seconds"] > 0 and m["train_seconds"] > 0 and m["params"] > m["trainable_params"] > 0
    assert m["lm_pretrain_steps"] == 1  # a tenth of the 2 steps, at least one
    for name in ("flamingo.pt", "curves.png", "gates.png", "history.json", "clip.pt"):
        assert (trained_run / name).is_file(), name
    assert m["clip_checkpoint"].endswith("clip.pt")


def test_the_recipe_holds_every_setting_and_builds_on_a_clip():
    recipe = FlamingoRecipe()
    assert (recipe.steps, recipe.lr, recipe.gate_lr_scale, recipe.lm_steps, recipe.clip_steps) == \
        (1400, 2e-3, 5.0, 300, 3750)
    assert recipe.prerequisites() == {"clip": (CLIPRecipe(), 3750)}
    assert recipe.train_config(seed=3).lr == 2e-3 and recipe.train_config().steps == 1400
    assert recipe.family == "cross-attention fusion" and recipe.verbs == ("fewshot",)


def test_eval_reproduces_the_training_metrics(trained_run, capsys):
    assert main(["eval", "flamingo", str(trained_run / "flamingo.pt")]) == 0
    again = json.loads(capsys.readouterr().out)
    trained = json.loads((trained_run / "metrics.json").read_text())
    for key in ("caption_em", "video_em", "pair_acc", "fewshot_acc", "gates", "lm_pretrain_seconds",
                "lm_pretrain_steps", "params"):
        assert again[key] == trained[key], key


def _prompt(tmp_path, text: str) -> str:
    path = tmp_path / "prompt.txt"
    path.write_text(text)
    return str(path)


def test_fewshot_continues_an_interleaved_prompt(trained_run, tmp_path, capsys):
    for name in ("000.png", "001.png"):
        (tmp_path / name).write_bytes((SAMPLES / name).read_bytes())
    args = ["fewshot", str(trained_run / "flamingo.pt"), _prompt(tmp_path, "<image:000.png> red . <image:001.png>")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0 and capsys.readouterr().out == first and len(first.splitlines()) == 1  # deterministic


@pytest.mark.parametrize("text, message", [
    ("<image:missing.png> red .", "image: cannot read"),
    ("<image:big.png> red .", "expected 32x32"),
    ("<image:000.png> banana", "unknown word 'banana'"),
    ("<image> red .", "write each image as <image:path.png>"),
    ("<image:000.png> " + "red . " * 20, "max_len=24"),
])
def test_fewshot_refuses_bad_prompts(trained_run, tmp_path, capsys, text, message):
    (tmp_path / "000.png").write_bytes((SAMPLES / "000.png").read_bytes())
    Image.new("RGB", (48, 48)).save(tmp_path / "big.png")
    assert main(["fewshot", str(trained_run / "flamingo.pt"), _prompt(tmp_path, text)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err


def test_fewshot_refuses_a_missing_prompt_file_and_a_foreign_checkpoint(trained_run, tmp_path, capsys):
    assert main(["fewshot", str(trained_run / "flamingo.pt"), str(tmp_path / "nope.txt")]) == 2
    assert "prompt_file: no file at" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["fewshot", str(bad), _prompt(tmp_path, "<image:x.png>")]) == 2
    assert "not a readable torch checkpoint" in capsys.readouterr().err
