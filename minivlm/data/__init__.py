"""The shapes world: rendering, captions, tokenizer, cached datasets and preprocessing."""
from minivlm.data.datasets import EVAL_SETS, ShapesData, eval_set, make_shapes, meaning_ids, shuffled_batches
from minivlm.data.folder import load_folder, load_image, save_folder
from minivlm.data.images import preprocess
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import COLOURS, HELD_OUT, RELATIONS, SHAPES, SIZES, Scene, caption_meaning, render, sample_scene
