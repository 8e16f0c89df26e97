"""The VQ-VAE image tokenizer: shapes, the token round trip, bad inputs, gradients through the straight-through
estimator, a loss that falls on a tiny batch, the dead-code restart, checkpoints and determinism."""
import dataclasses

import numpy as np
import pytest
import torch

from minivlm.data.images import preprocess
from minivlm.models.vqvae import VQVAE, VQConfig, dead_code_restarts, distinct_rows, pixels
from minivlm.recipes.vq import load_vq
from minivlm.train import TrainConfig, build, fit, save_checkpoint

TINY = VQConfig(hidden=16, codes=16, code_dim=8)


@pytest.fixture(scope="module")
def images(small_data):
    return preprocess(small_data.images[:16])  # (16, 3, 32, 32)


def test_forward_shapes_and_ids_in_range(images):
    vq = build(VQVAE, TINY, 0)
    recon, ids, vq_loss = vq(images)
    assert recon.shape == (16, 3, 32, 32)
    assert ids.shape == (16, 64) and ids.dtype == torch.int64
    assert 0 <= ids.min() and ids.max() < TINY.codes
    assert vq_loss.ndim == 0


def test_encode_decode_round_trip_matches_forward(images):
    vq = build(VQVAE, TINY, 0).eval()
    ids = vq.encode(images)
    assert ids.shape == (16, 64) and ids.dtype == torch.int64
    recon, fwd_ids, _ = vq(images)
    assert torch.equal(ids, fwd_ids)
    decoded = vq.decode(ids)
    assert torch.allclose(decoded, recon.clamp(-1, 1), atol=1e-6) and decoded.abs().max() <= 1


def test_pixels_inverts_preprocess(small_data):
    assert np.array_equal(pixels(preprocess(small_data.images[:4])), small_data.images[:4])


@pytest.mark.parametrize("bad, expected", [
    (torch.zeros(2, 32, 32, 3), "images: expected (B, 3, 32, 32) float, got (2, 32, 32, 3) torch.float32 (in [-1, 1]"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "got (2, 3, 32, 32) torch.uint8"),
    (np.zeros((2, 3, 32, 32), np.float32), "got ndarray"),
])
def test_bad_images_are_refused(bad, expected):
    with pytest.raises(ValueError) as e:
        build(VQVAE, TINY, 0).encode(bad)
    assert expected in str(e.value)


@pytest.mark.parametrize("ids, expected", [
    (torch.full((1, 64), 16), "ids: expected values in [0, 16), got 16..16"),
    (torch.full((1, 64), -1), "ids: expected values in [0, 16), got -1..-1"),
    (torch.zeros(1, 63, dtype=torch.long), "ids: expected (B, 64) int, got (1, 63) torch.int64 (a 8x8 grid of codes)"),
    (torch.zeros(1, 64), "ids: expected (B, 64) int, got (1, 64) torch.float32"),
])
def test_bad_ids_are_refused(ids, expected):
    with pytest.raises(ValueError) as e:
        build(VQVAE, TINY, 0).decode(ids)
    assert expected in str(e.value)


def test_config_must_match_two_downsamplings():
    with pytest.raises(ValueError, match="image_size = 4 \\* grid"):
        VQVAE(VQConfig(grid=4))


def test_gradient_reaches_encoder_decoder_and_codebook(images):
    vq = build(VQVAE, TINY, 0)
    vq.loss(images).backward()
    for name in ("encoder.0.weight", "vq.codebook.weight", "decoder.0.weight"):
        grad = dict(vq.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_loss_falls_on_a_tiny_batch(images):
    vq = build(VQVAE, TINY, 0)
    opt = torch.optim.Adam(vq.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = vq.loss(images)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_distinct_rows_are_torch_unique_rows_in_first_seen_order():
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(50, 8, generator=g)  # (50, 8)
    pick = torch.randint(0, 50, (400,), generator=g)  # many repeats, as the black background gives
    x = pool[pick]  # (400, 8)
    x[5, 3] = x[5, 3] + 1e-6  # a row that differs from its twin in one entry only
    rows = distinct_rows(x)
    assert torch.equal(torch.unique(rows, dim=0), torch.unique(x, dim=0))  # the reference: the same set of rows
    assert len(rows) == len(torch.unique(x, dim=0))  # each once
    first = [min(i for i in range(len(x)) if torch.equal(x[i], r)) for r in rows]
    assert first == sorted(first)  # in the order they first appear


def test_dead_codes_restart_at_the_worst_served_vectors():
    codebook = torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]])  # codes 1 and 2 are far from every z
    z = torch.tensor([[[0.0, 0.1], [3.0, 0.0], [0.0, 0.0], [0.0, -2.0]]])  # (1, 4, 2): all pick code 0
    dead, vectors = dead_code_restarts(z, codebook)
    assert dead.tolist() == [1, 2]
    assert torch.equal(vectors, torch.tensor([[3.0, 0.0], [0.0, -2.0]]))  # the two worst-served, worst first


def test_training_forward_gives_every_dead_code_a_vector(images):
    vq = build(VQVAE, TINY, 0)  # codes start near 0: almost every vector picks the same code, the rest are dead
    with torch.no_grad():
        _, ids, _ = vq.eval()(images)
    dead = set(range(TINY.codes)) - set(ids.flatten().tolist())
    assert len(dead) >= TINY.codes // 2
    with torch.no_grad():
        _, ids, _ = vq.train()(images)  # the restart runs before quantising, so the restarted codes serve this batch
    assert dead <= set(ids.flatten().tolist())
    before = vq.vq.codebook.weight.clone()
    with torch.no_grad():
        vq.eval()(images)
    assert torch.equal(before, vq.vq.codebook.weight)  # no restart outside training
    off = build(VQVAE, dataclasses.replace(TINY, restart_dead=False), 0).train()
    before = off.vq.codebook.weight.clone()
    with torch.no_grad():
        off(images)
    assert torch.equal(before, off.vq.codebook.weight)


def test_checkpoint_round_trip(images, tmp_path):
    vq = build(VQVAE, TINY, 3).eval()
    save_checkpoint(tmp_path / "vq.pt", vq, "vq", TINY, TrainConfig(steps=1, seed=3))
    loaded, ckpt = load_vq(tmp_path / "vq.pt")
    assert loaded.cfg == TINY and ckpt["seed"] == 3
    assert torch.equal(loaded.encode(images), vq.encode(images))
    assert torch.equal(loaded.decode(vq.encode(images)), vq.decode(vq.encode(images)))


def test_training_is_deterministic_at_a_seed(images):
    def run(seed):
        vq = build(VQVAE, TINY, seed)
        hist = fit(vq, lambda: (images,), TrainConfig(steps=3, seed=seed, warmup_steps=1, device="cpu"))
        return [r["loss"] for r in hist.steps], vq.encode(images)
    (l0, ids0), (l1, ids1), (l2, _) = run(0), run(0), run(1)
    assert l0 == l1 and torch.equal(ids0, ids1)
    assert l0 != l2
