"""The shapes world: rendering, captions, questions, tokenizer, cached datasets and preprocessing."""
from minivlm.data.datasets import (EVAL_SETS, ShapesData, eval_set, make_captions, make_shapes, meaning_ids,
                                   shuffled_batches)
from minivlm.data.folder import load_folder, load_image, save_folder
from minivlm.data.images import preprocess
from minivlm.data.questions import (KINDS, QA, QUESTION_WORDS, VQA_EVAL_SETS, VQAData, ask, instruction_tokenizer,
                                    make_vqa, vqa_accuracy, vqa_correct, vqa_eval_set)
from minivlm.data.tokenizer import Tokenizer
from minivlm.data.world import COLOURS, HELD_OUT, RELATIONS, SHAPES, SIZES, Scene, caption_meaning, render, sample_scene
