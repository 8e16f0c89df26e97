"""data_samples/ is what its README says: reproducible from the world's seed, and loadable by load_folder."""
from pathlib import Path

import numpy as np

from minivlm.data import Tokenizer, load_folder, make_shapes

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def test_data_samples_reproduce_from_their_seed():
    tok = Tokenizer()
    made = make_shapes(12, "data-samples", tok, p_two=0.5)
    loaded = load_folder(SAMPLES, tok)
    assert loaded.captions == made.captions
    np.testing.assert_array_equal(loaded.images, made.images)
    assert loaded.tokens.equal(made.tokens)
