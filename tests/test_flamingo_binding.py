"""Frozen's fast binding on the toy Flamingo (recipes/fewshot.py): prompts that bind invented words to shapes by
example only, the answer being the word bound to the query's shape, determinism at a seed, and the scores of
`evaluate_binding` against a forward pass done here."""
import re

import numpy as np
import pytest
import torch

from minivlm.data.documents import INVENTED, flamingo_tokenizer, make_documents
from minivlm.models.clip import CLIP
from minivlm.models.flamingo import Flamingo
from minivlm.recipes.fewshot import binding_prompts, evaluate_binding, media_tensor
from minivlm.recipes.flamingo import SOURCES, FlamingoRecipe, flamingo_config
from minivlm.train import build


@pytest.fixture(scope="module")
def tok():
    return flamingo_tokenizer()


@pytest.fixture(scope="module")
def sets(tok):
    return make_documents(12, "binding-q", tok, images=1), make_documents(60, "binding-p", tok, images=1)


def _find(pool, img) -> int:
    return next(j for j in range(len(pool)) if np.array_equal(pool.media[j, 0, 0], img))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_binding_prompts_name_shapes_with_invented_words_only(sets, k):
    queries, pool = sets
    texts, media, answers, bindings = binding_prompts(queries, pool, k)
    assert media.shape == (12, k + 1, 1, 32, 32, 3)
    for i, (text, row, answer, bound) in enumerate(zip(texts, media, answers, bindings)):
        assert np.array_equal(row[-1, 0], queries.media[i, 0, 0])  # the query comes last
        shape = queries.scenes[i][0].objects[0].shape
        assert answer == bound[shape] and len(bound) == min(k, 2) and len(set(bound.values())) == len(bound)
        words = re.fullmatch(r"((<image> \w+ \. )*)<image>", text).group(1).split()[1::3]
        assert len(words) == k and set(words) <= set(INVENTED)
        shots = [pool.scenes[_find(pool, img)][0].objects[0].shape for img in row[:-1, 0]]
        assert words == [bound[s] for s in shots]  # each example is followed by the word bound to its shape
        assert shape in shots and sorted(set(shots)) == sorted(bound)  # the query's shape is among the examples
        if k == 4:
            assert sorted(shots.count(s) for s in bound) == [2, 2]  # two ways, two examples each


def test_binding_prompts_are_fixed_by_the_seed_and_draw_the_words_afresh(sets):
    queries, pool = sets
    a, b, c = (binding_prompts(queries, pool, 2, seed=s) for s in (0, 0, 1))
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert a[0] != c[0]
    assert len({tuple(sorted(bound.items())) for bound in a[3]}) > 1  # each prompt its own binding
    texts, media, answers, _ = binding_prompts(queries, pool, 0)
    assert texts == ["<image>"] * 12 and media.shape == (12, 1, 1, 32, 32, 3) and set(answers) <= set(INVENTED)
    with pytest.raises(ValueError, match="words: expected at least ways=3 distinct words"):
        binding_prompts(queries, pool, 2, words=("dax", "dax"), ways=3)


def test_evaluate_binding_scores_the_models_own_next_word(sets, tok, tiny_cfg):
    """The forced choice and the probability on the invented words, against a forward pass of the model here."""
    data = FlamingoRecipe(n={s: 8 for s in SOURCES}, batch={s: 4 for s in SOURCES})
    cfg = flamingo_config(build(CLIP, tiny_cfg, seed=0), tok, data, resampler_depth=1, heads=2, init_gate=0.3)
    cfg.lm.dim, cfg.lm.heads = 32, 2
    model = build(Flamingo, cfg, seed=0).eval()
    queries, pool = sets
    scores = evaluate_binding(model, tok, queries, pool, shots=(0, 2))
    texts, media, answers, bindings = binding_prompts(queries, pool, 2)
    ids = torch.tensor([tok.encode(t)[:-1] for t in texts])
    with torch.no_grad():
        probs = model(ids, media_tensor(media))[:, -1].softmax(-1)  # (N, V)
    invented = probs[:, [tok.index[w] for w in INVENTED]]  # (N, 4)
    choice = [INVENTED[j] for j in invented.argmax(1)]
    assert scores[2]["choice_acc"] == pytest.approx(np.mean([c == a for c, a in zip(choice, answers)]))
    assert scores[2]["p_invented"] == pytest.approx(float(invented.sum(1).mean()), rel=1e-5)
    assert scores[2]["chance"] == 0.25 and scores[2]["chance_prompt"] == 0.5 and scores[0]["chance_prompt"] == 0.25
    for k in (0, 2):
        assert all(0.0 <= scores[k][m] <= 1.0 for m in scores[k])
        assert scores[k]["acc"] <= scores[k]["says_invented"]
