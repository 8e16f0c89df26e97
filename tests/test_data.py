"""Preprocessing, cached datasets and the image folder format."""
import numpy as np
import pytest
import torch
from PIL import Image

from minivlm.data import (EVAL_SETS, HELD_OUT, caption_meaning, eval_set, load_folder, load_image, make_captions,
                          make_shapes, preprocess, save_folder, shuffled_batches)


# preprocess

def test_preprocess_scales_and_moves_channels_first():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    x = preprocess(images)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    b, y, col, c = 2, 5, 17, 1
    assert x[b, c, y, col].item() == pytest.approx(images[b, y, col, c] / 127.5 - 1)
    assert torch.allclose(x, torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1)
    edges = preprocess(np.stack([np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)]))
    assert edges[0].eq(-1).all() and edges[1].eq(1).all()


def test_preprocess_accepts_one_image_and_torch_tensors():
    img = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    one = preprocess(img)
    assert one.shape == (1, 3, 32, 32)
    assert torch.equal(one, preprocess(torch.from_numpy(img)))
    assert torch.equal(one, preprocess(img[None]))
    img.setflags(write=False)  # np.asarray of a PIL image is read-only
    assert torch.equal(one, preprocess(img))
    assert preprocess(np.zeros((2, 16, 16, 3), np.uint8), res=16).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 16, 16, 3), np.uint8), r"images: expected shape \(B, 32, 32, 3\) .*got \(2, 16, 16, 3\)"),
    (np.zeros((2, 32, 32, 4), np.uint8), r"images: expected shape .*got \(2, 32, 32, 4\)"),
    (np.zeros((2, 3, 32, 32), np.uint8), r"images: expected shape .*got \(2, 3, 32, 32\)"),
    (np.zeros((2, 32, 32, 3), np.float32), "images: expected dtype uint8 .*got (torch.)?float32"),
    (torch.zeros(2, 32, 32, 3), "images: expected dtype uint8 .*got torch.float32"),
    (np.zeros((0, 32, 32, 3), np.uint8), "images: expected at least one image, got an empty batch"),
], ids=["size", "channels", "channels-first", "float array", "float tensor", "empty"])
def test_preprocess_refuses_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        preprocess(images)


def test_preprocess_refuses_other_types():
    with pytest.raises(TypeError, match="images: expected a NumPy array or torch tensor, got list"):
        preprocess([[0, 0, 0]])


# datasets

def test_make_shapes_arrays_agree(tokenizer, small_data):
    assert small_data.images.shape == (200, 32, 32, 3) and small_data.images.dtype == np.uint8
    assert len(small_data) == 200 == len(small_data.scenes)
    assert torch.equal(small_data.tokens, tokenizer.encode_batch(small_data.captions))
    n_two = sum(len(s.objects) == 2 for s in small_data.scenes)
    assert 20 <= n_two <= 60  # p_two = 0.2


def test_make_shapes_states_two_object_captions_both_ways(tokenizer):
    data = make_shapes(n=100, seed=0, tokenizer=tokenizer, p_two=1.0)
    flipped = [c != s.caption() for c, s in zip(data.captions, data.scenes)]
    assert 20 <= sum(flipped) <= 80  # p_flip = 0.5
    assert all(c == s.caption(flip=True) for c, s, f in zip(data.captions, data.scenes, flipped) if f)
    none = make_shapes(n=100, seed=0, tokenizer=tokenizer, p_two=1.0, p_flip=0.0)
    assert none.captions == [s.caption() for s in none.scenes]


def test_make_shapes_refuses_no_scenes(tokenizer):
    with pytest.raises(ValueError, match="n: expected a positive number of scenes, got 0"):
        make_shapes(n=0, seed=0, tokenizer=tokenizer)


def test_subset_keeps_rows_together(small_data):
    idx = [5, 0, 199]
    sub = small_data.subset(idx)
    assert len(sub) == 3 and np.array_equal(sub.images, small_data.images[idx])
    assert sub.captions == [small_data.captions[i] for i in idx]
    assert torch.equal(sub.tokens, small_data.tokens[idx]) and sub.scenes[2] is small_data.scenes[199]


def test_eval_set_is_fixed_and_matches_its_spec(tokenizer):
    a, b = eval_set("heldout", tokenizer), eval_set("heldout", tokenizer)
    assert len(a) == EVAL_SETS["heldout"]["n"]
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert all(len(s.objects) == 1 and (s.objects[0].colour, s.objects[0].shape) in HELD_OUT for s in a.scenes)
    with pytest.raises(ValueError, match=r"name: expected one of \['heldout', 'mixed', 'two', 'zeroshot'\], "
                                         "got 'test'"):
        eval_set("test", tokenizer)


def test_shuffled_batches_cover_each_epoch_once():
    gen = torch.Generator().manual_seed(0)
    stream = shuffled_batches(10, 3, gen)
    epoch = torch.cat([next(stream) for _ in range(3)])  # 9 of 10: the short batch is dropped
    assert len(set(epoch.tolist())) == 9 and epoch.max() < 10
    again = shuffled_batches(10, 3, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([next(again) for _ in range(3)]), epoch)
    with pytest.raises(ValueError, match=r"batch_size: 11 is larger than the dataset \(10 samples\)"):
        next(shuffled_batches(10, 11, gen))


# folder format

def test_folder_round_trip(tmp_path, tokenizer, small_data):
    sub = small_data.subset(range(12))
    save_folder(sub, tmp_path)
    assert len(list(tmp_path.glob("*.png"))) == 12
    back = load_folder(tmp_path, tokenizer)
    assert np.array_equal(back.images, sub.images)  # PNG is lossless
    assert back.captions == sub.captions and torch.equal(back.tokens, sub.tokens)


def test_load_folder_refuses_bad_folders(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="path: expected a folder with captions.tsv, found none"):
        load_folder(tmp_path, tokenizer)
    (tmp_path / "captions.tsv").write_text("\n\n")
    with pytest.raises(ValueError, match="lists no images"):
        load_folder(tmp_path, tokenizer)
    (tmp_path / "captions.tsv").write_text("000.png a small red circle\n")
    with pytest.raises(ValueError, match=r"captions.tsv line 1: expected 'file.png<TAB>caption'"):
        load_folder(tmp_path, tokenizer)
    Image.new("RGB", (32, 32)).save(tmp_path / "000.png")
    (tmp_path / "captions.tsv").write_text("000.png\ta small red dog\n")
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        load_folder(tmp_path, tokenizer)


def test_load_folder_reads_a_hand_written_index(tmp_path, tokenizer):
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "blue.png")
    (tmp_path / "captions.tsv").write_text("blue.png\ta large blue square  \r\n\r\n")  # edited on Windows
    data = load_folder(tmp_path, tokenizer)
    assert data.captions == ["a large blue square"] and data.images[0, 5, 5].tolist() == [0, 0, 255]
    assert data.scenes is None


def test_load_image_sizes_and_unreadable_files(tmp_path):
    Image.new("RGB", (48, 40), (255, 0, 0)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"image: .*big.png' is 48x40, expected 32x32 \(pass resize=True"):
        load_image(tmp_path / "big.png")
    img = load_image(tmp_path / "big.png", resize=True)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img[10, 10].tolist() == [255, 0, 0]
    Image.new("L", (32, 32), 200).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png").shape == (32, 32, 3)  # converted to RGB
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"image: cannot read .*notes.png' as an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="image: cannot read .*missing.png"):
        load_image(tmp_path / "missing.png")


def test_meaning_ids_group_wordings_of_one_scene_and_nothing_else():
    from minivlm.data import meaning_ids
    texts = ["a small red circle to the left of a large blue square",
             "a large blue square to the right of a small red circle",
             "a large blue square to the left of a small red circle",  # the other scene
             "a small red circle", "a small red circle", "red circle a small"]  # last: not a world sentence
    ids = meaning_ids(texts).tolist()
    assert ids[0] == ids[1] != ids[2] and ids[3] == ids[4] != ids[5] and len(set(ids)) == 4


def test_datasets_carry_meaning_ids_through_subset_and_folders(tmp_path):
    from minivlm.data import Tokenizer, load_folder, make_shapes, meaning_ids, save_folder
    tok = Tokenizer()
    d = make_shapes(40, "meanings", tok, p_two=0.5)
    assert d.meanings.equal(meaning_ids(d.captions))
    sub = d.subset([3, 1, 3])
    assert sub.meanings[0] == sub.meanings[2] and sub.meanings.tolist() == d.meanings[[3, 1, 3]].tolist()
    save_folder(d.subset(range(6)), tmp_path)
    assert load_folder(tmp_path, tok).meanings.equal(meaning_ids(d.captions[:6]))


def test_make_captions_is_seeded_text_of_the_world():
    captions = make_captions(400, seed=0, p_two=0.5)
    assert captions == make_captions(400, seed=0, p_two=0.5) != make_captions(400, seed=1, p_two=0.5)
    two = [len(caption_meaning(c)) == 3 for c in captions]  # every caption has a meaning (or this raises)
    assert 0.4 < sum(two) / 400 < 0.6
    with pytest.raises(ValueError, match="n: expected a positive number of captions, got 0"):
        make_captions(0, seed=0)
