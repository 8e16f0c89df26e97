"""Exercise 3, InfoNCE (lessons/03_info_nce.md). Check with `python -m minivlm.check info_nce`.

Fill in the function in torch (torch.nn.functional is allowed), so that gradients reach all three tensors.
"""
import torch


def info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric CLIP loss (Radford et al. 2021, Figure 3): image_emb (B, E), text_emb (B, E), row i of each a pair,
    not yet unit-norm; logit_scale a 0-dim tensor = 1/temperature. groups (B,) ints or None: pairs with equal ids
    are all positives of each other, the target uniform over them. Returns the 0-dim mean of the image->text and
    text->image cross-entropies."""
    raise NotImplementedError("info_nce: normalise, similarity logits, cross-entropy both ways")
