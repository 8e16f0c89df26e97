"""The judge: targets from scenes in the canonical order of `caption_meaning`, predictions that are meanings of the
world, a loss that falls on a tiny batch, and judge_accuracy's bookkeeping on fake predictors."""
import pytest
import torch

from minivlm.data.images import preprocess
from minivlm.data.world import Obj, Scene, caption_meaning
from minivlm.models.judge import (CANONICAL_RELATIONS, HEADS, Judge, JudgeConfig, meaning_of,
                                  scene_targets)
from minivlm.recipes.vq import judge_accuracy, load_judge
from minivlm.train import TrainConfig, build, save_checkpoint

STAR = Obj("star", "red", "large", 8, 16, 6)
CIRCLE = Obj("circle", "blue", "small", 24, 16, 4)


def _caption(meaning: tuple) -> str:
    phrase = lambda obj: "a " + " ".join(obj)  # noqa: E731  (size, colour, shape)
    return phrase(meaning[0]) if len(meaning) == 1 else f"{phrase(meaning[0])} {meaning[1]} {phrase(meaning[2])}"


def test_targets_of_one_object():
    t = scene_targets([Scene((STAR,))])
    assert t["count"].tolist() == [0]
    assert (t["colour0"].item(), t["shape0"].item(), t["size0"].item()) == (0, 4, 1)  # red, star, large


@pytest.mark.parametrize("objects, relation, first, canonical", [
    ((STAR, CIRCLE), "to the left of", "red", "to the left of"),
    ((CIRCLE, STAR), "to the right of", "red", "to the left of"),  # stated from the other side: slots swap
    ((STAR, CIRCLE), "above", "red", "above"),
    ((CIRCLE, STAR), "below", "red", "above"),
])
def test_two_object_targets_follow_the_canonical_order(objects, relation, first, canonical):
    scene = Scene(objects, relation)
    t = scene_targets([scene])
    assert t["count"].tolist() == [1]
    assert t["relation"].item() == CANONICAL_RELATIONS.index(canonical)
    assert t["colour0"].item() == (0 if first == "red" else 2) and t["colour1"].item() == 2  # red first, blue second
    assert t["shape0"].item() == 4 and t["shape1"].item() == 0 and t["size1"].item() == 0
    assert meaning_of({h: v.item() for h, v in t.items()}) == scene.meaning()


def test_targets_round_trip_on_sampled_scenes(small_data):
    t = scene_targets(small_data.scenes)
    assert all(v.shape == (len(small_data),) for v in t.values())
    for i, scene in enumerate(small_data.scenes):
        assert meaning_of({h: t[h][i].item() for h in HEADS}) == scene.meaning()


def test_predict_returns_meanings_of_the_world(small_data):
    judge = build(Judge, JudgeConfig(), 0).eval()
    preds = judge.predict(preprocess(small_data.images[:8]))
    assert len(preds) == 8
    for meaning in preds:
        assert caption_meaning(_caption(meaning)) == meaning  # a sentence of the world, in canonical form


def test_logits_shapes_and_bad_images(small_data):
    judge = build(Judge, JudgeConfig(), 0)
    logits = judge(preprocess(small_data.images[:4]))
    assert {h: v.shape for h, v in logits.items()} == {h: (4, n) for h, n in HEADS.items()}
    with pytest.raises(ValueError, match=r"images: expected \(B, 3, 32, 32\) float, got \(4, 32, 32, 3\) "
                                         r"torch.uint8"):
        judge(torch.from_numpy(small_data.images[:4]))


def test_loss_falls_on_a_tiny_batch(small_data):
    judge = build(Judge, JudgeConfig(), 0)
    images = preprocess(small_data.images[:32])
    targets = scene_targets(small_data.scenes[:32])
    opt = torch.optim.AdamW(judge.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = judge.loss(images, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses


class _Oracle:
    """A fake judge that reads the true meanings of the scenes it is shown, in order (optionally swapping slots)."""

    def __init__(self, scenes, swap=False):
        self.meanings, self.swap, self.seen = [s.meaning() for s in scenes], swap, 0

    def predict(self, images):
        out = self.meanings[self.seen:self.seen + len(images)]
        self.seen += len(images)
        return [(m[2], m[1], m[0]) if self.swap and len(m) == 3 else m for m in out]


def test_judge_accuracy_of_a_perfect_predictor_is_one(small_data):
    acc = judge_accuracy(_Oracle(small_data.scenes), small_data.images, small_data.scenes, batch_size=64)
    assert acc == {"judge_acc": 1.0, "judge_acc_1obj": 1.0, "judge_acc_2obj": 1.0, "colour_shape_acc": 1.0}


def test_swapped_slots_keep_colour_and_shape_but_lose_the_meaning(small_data):
    acc = judge_accuracy(_Oracle(small_data.scenes, swap=True), small_data.images, small_data.scenes)
    assert acc["judge_acc_2obj"] == 0.0 and acc["judge_acc_1obj"] == 1.0 and acc["colour_shape_acc"] == 1.0


def test_judge_accuracy_checks_lengths(small_data):
    with pytest.raises(ValueError, match="scenes: expected one scene per image \\(10\\), got 9"):
        judge_accuracy(_Oracle(small_data.scenes), small_data.images[:10], small_data.scenes[:9])


def test_checkpoint_round_trip(small_data, tmp_path):
    judge = build(Judge, JudgeConfig(), 1).eval()
    save_checkpoint(tmp_path / "judge.pt", judge, "judge", judge.cfg, TrainConfig(steps=1, seed=1))
    loaded, _ = load_judge(tmp_path / "judge.pt")
    x = preprocess(small_data.images[:8])
    assert loaded.predict(x) == judge.predict(x)


def test_label_lists_are_the_worlds():
    from minivlm.data.world import COLOURS, SHAPES, SIZES
    from minivlm.models import judge
    assert judge.COLOUR_NAMES == tuple(COLOURS) and judge.SHAPES == SHAPES and judge.SIZE_NAMES == tuple(SIZES)
