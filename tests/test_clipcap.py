"""ClipCap: the two mapping networks, the frozen parts, the caption-only loss, learning on a tiny batch, greedy and
seeded generation, checkpoint round trip, the LM pretrained after a blank prefix, and bad inputs."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from minivlm.concepts.mapping import MLPMapper, TransformerMapper
from minivlm.data.images import preprocess
from minivlm.models.clipcap import ClipCap, ClipCapConfig
from minivlm.recipes.clipcap import ClipCapRecipe, caption_images, clipcap_config, load_clipcap, train_clipcap
from minivlm.recipes.lm import LMRecipe, blank_prefix, evaluate_lm, lm_config, train_lm
from minivlm.train import TrainConfig, build, make_optimizer, save_checkpoint

K = 3


def tiny(tokenizer, tiny_cfg, **kw) -> ClipCapConfig:
    """Tiny CLIP (conftest) and a one-block LM of width 32 with room for K prefix embeddings."""
    lm = dataclasses.replace(lm_config(tokenizer, K), dim=32, layers=1, heads=2)
    return ClipCapConfig(clip=tiny_cfg, lm=lm, prefix_len=K, **{"mapper_layers": 1, **kw})


@pytest.fixture(scope="module")
def batch(small_data):
    return preprocess(small_data.images[:8]), small_data.tokens[:8]  # (8, 3, 32, 32), (8, 16)


@pytest.mark.parametrize("k", [1, 4, 10])
@pytest.mark.parametrize("mapper_cls", [MLPMapper, TransformerMapper])
def test_mapper_shapes(mapper_cls, k):
    mapper = mapper_cls(16, 32, k) if mapper_cls is MLPMapper else mapper_cls(16, 32, k, clip_len=2, heads=2)
    assert mapper(torch.randn(5, 16)).shape == (5, k, 32)


def test_transformer_mapper_maps_each_image_on_its_own():
    mapper = TransformerMapper(16, 32, 4, clip_len=2, layers=2, heads=2).eval()
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = mapper(x)  # (6, 4, 32)
        alone = torch.cat([mapper(x[i:i + 1]) for i in range(6)])
        other = mapper(torch.cat([x[:3], torch.randn(5, 16)]))  # same first rows, other company
    assert torch.allclose(together, alone, atol=1e-6) and torch.allclose(together[:3], other[:3], atol=1e-6)
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # the prefix depends on the image


@pytest.mark.parametrize("freeze_lm, mapper", [(False, "mlp"), (True, "transformer")])
def test_frozen_parts_get_no_gradient_and_do_not_move(tokenizer, tiny_cfg, batch, freeze_lm, mapper):
    model = build(ClipCap, tiny(tokenizer, tiny_cfg, mapper=mapper, freeze_lm=freeze_lm), seed=0).train()
    frozen = [model.clip] + ([model.lm] if freeze_lm else [])
    assert not model.clip.training and model.lm.training != freeze_lm and model.mapper.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, TrainConfig(steps=1, lr=1e-2))
    model.loss(*batch).backward()
    opt.step()
    after = model.state_dict()
    for part in frozen:
        for p in part.parameters():
            assert not p.requires_grad and p.grad is None
    for name in before:
        moved = not torch.equal(before[name], after[name])
        if name.startswith("clip.") or (freeze_lm and name.startswith("lm.")):
            assert not moved, name  # bit-identical
        elif name == "mapper.mlp.2.weight" or name == "lm.tok.weight" or name == "mapper.constants":
            assert moved, name
    n_opt = sum(p.numel() for group in opt.param_groups for p in group["params"])
    assert n_opt == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_loss_counts_caption_tokens_only(tokenizer, tiny_cfg, batch):
    model = build(ClipCap, tiny(tokenizer, tiny_cfg), seed=0).eval()
    images, tokens = batch
    with torch.no_grad():
        prefix = model.prefix(images)  # (8, K, 32)
        lm = model.lm
        x = torch.cat([prefix, lm.tok(tokens)], dim=1) + lm.pos[:, :K + 16]  # (8, K + 16, 32)
        for block in lm.blocks:
            x = block(x, torch.ones(K + 16, K + 16, dtype=torch.bool).tril())
        logits = lm.ln(x) @ lm.tok.weight.T  # (8, K + 16, V): every position, the prefix's too
        pred, target = logits[:, K:-1], tokens[:, 1:]  # position K + t predicts caption token t + 1
        keep = target != tokenizer.pad_id
        assert torch.allclose(model.loss(images, tokens), F.cross_entropy(pred[keep], target[keep]), atol=1e-5)


def test_loss_falls_on_a_tiny_overfit_batch(tokenizer, tiny_cfg, batch):
    model = build(ClipCap, tiny(tokenizer, tiny_cfg), seed=0).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.loss(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::6]


def test_caption_is_deterministic_and_greedy_is_argmax(tokenizer, tiny_cfg, batch):
    model = build(ClipCap, tiny(tokenizer, tiny_cfg), seed=1).eval()
    images = batch[0]
    greedy = model.caption(images, tokenizer)
    assert greedy == model.caption(images, tokenizer) and len(greedy) == 8
    with torch.no_grad():
        prefix, ids = model.prefix(images), torch.full((8, 1), tokenizer.bos_id)
        for _ in range(16 - 1):  # argmax decoding without a cache; rows are cut at <eos> by decode
            ids = torch.cat([ids, model.lm(ids, prefix)[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert greedy == [tokenizer.decode(row) for row in ids]
    sample = lambda seed: model.caption(images, tokenizer, 1.0, generator=torch.Generator().manual_seed(seed))
    assert sample(0) == sample(0) and sample(0) != sample(1)


def test_checkpoint_round_trip(tokenizer, tiny_cfg, small_data, tmp_path):
    model = build(ClipCap, tiny(tokenizer, tiny_cfg, mapper="transformer", freeze_lm=True), seed=0).eval()
    save_checkpoint(tmp_path / "cc.pt", model, "clipcap", model.cfg, TrainConfig(steps=1),
                    extra={"vocab": tokenizer.vocab, "max_len": tokenizer.max_len})
    loaded, tok, _ = load_clipcap(tmp_path / "cc.pt")
    assert loaded.cfg == model.cfg and tok.max_len == 16
    assert all(not p.requires_grad for p in loaded.lm.parameters())
    images = small_data.images[:20]
    assert caption_images(loaded, images, tok, batch_size=7) == caption_images(model, images, tokenizer)


def test_lm_pretrained_after_a_blank_prefix(tokenizer):
    lm, history = train_lm(TrainConfig(steps=2, batch_size=16), LMRecipe(n_train=64), tokenizer, prefix_len=K)
    assert lm.cfg == lm_config(tokenizer, K) and blank_prefix(lm, tokenizer, 5).shape == (5, K, 128)
    assert len(history.steps) == 2 and history.steps[-1]["samples"] == 32
    with torch.no_grad():
        m = evaluate_lm(lm, tokenizer, tokenizer.encode_batch(["a small red circle"]), n_samples=4)
    assert 0 <= m["val_token_acc"] <= 1 and len(m["samples"]) == 4


def test_recipe_refuses_an_untrained_frozen_lm_and_a_mismatched_lm(tokenizer, tiny_cfg):
    clip = build(ClipCap, tiny(tokenizer, tiny_cfg), seed=0).clip
    with pytest.raises(ValueError, match="lm, lm_steps: a frozen LM must be pretrained"):
        train_clipcap(TrainConfig(steps=1), clip, tokenizer, ClipCapRecipe(freeze_lm=True, lm_steps=0))
    lm = build(ClipCap, clipcap_config(clip, tokenizer, prefix_len=2), seed=0).lm
    with pytest.raises(ValueError, match=r"lm: expected a LM with config .*prefix_len=4"):
        train_clipcap(TrainConfig(steps=1), clip, tokenizer, lm=lm)


@pytest.mark.parametrize("call, message", [
    (lambda m, b: m.loss(b[0][:, :, :16], b[1]),
     r"images: expected \(B, 3, 32, 32\) torch.float32, got \(8, 3, 16, 32\)"),
    (lambda m, b: m.loss(b[0], b[1].float()), r"tokens: expected \(B, T\) torch.int64, got \(8, 16\) torch.float32"),
    (lambda m, b: m.loss(b[0][:4], b[1]),
     r"tokens: expected \(B, T\) with B = 4, got \(8, 16\)"),
    (lambda m, b: m.loss(b[0], torch.ones(8, 17, dtype=torch.long)), r"0 cached \+ 3 prefix \+ 17 tokens exceed"),
    (lambda m, b: m.caption(b[0].double(), None),
     r"images: expected \(B, 3, 32, 32\) torch.float32, got \(8, 3, 32, 32\) torch.float64"),
], ids=["image size", "float tokens", "batch sizes", "caption too long", "double images"])
def test_bad_inputs(tokenizer, tiny_cfg, batch, call, message):
    with pytest.raises(ValueError, match=message):
        call(build(ClipCap, tiny(tokenizer, tiny_cfg), seed=0), batch)


@pytest.mark.parametrize("kw, message", [
    (dict(mapper="resampler"), r"mapper: expected one of \('mlp', 'transformer'\), got 'resampler'"),
    (dict(prefix_len=0), r"prefix_len: expected 1 <= k < lm.max_len - 1 = 18"),
])
def test_bad_config(tokenizer, tiny_cfg, kw, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny(tokenizer, tiny_cfg), **kw)
