"""Research probes of a trained toy Flamingo, for the benchmark and the design runs of bench/README.md ("Flamingo")."""
from __future__ import annotations

import numpy as np
import torch

from minivlm.data.tokenizer import Tokenizer
from minivlm.models.flamingo import Flamingo
from minivlm.recipes.fewshot import media_tensor


@torch.no_grad()
def relation_probe(model: Flamingo, tokenizer: Tokenizer, images: np.ndarray, scenes: list) -> dict:
    """Why two-object captions fail: teacher-force each two-object scene's caption up to its relation and read the
    model's next-token probabilities. `p_vertical_*`: P(above) + P(below) against P(to ...) on scenes whose relation
    is vertical and on those where it is horizontal (equal: the model cannot see the layout); `direction_acc`: how
    often the true side (above vs below, left vs right) is more likely than the opposite one. The scene's first
    object is named first, which half the time goes against a model trained in reading order: for such a model
    read the two p_vertical figures only."""
    device, ids = next(model.parameters()).device, tokenizer.index
    opposite = {"above": "below", "below": "above", "left": "right", "right": "left"}
    p_vert, direction = {"vertical": [], "horizontal": []}, []
    for image, scene in zip(images, scenes):
        if len(scene.objects) != 2:
            continue
        prompt = torch.tensor([tokenizer.encode(f"<image> {scene.objects[0].phrase} to the")[:-1]], device=device)
        p = model(prompt, media_tensor(image[None, None, None]).to(device))[0].softmax(-1)  # (L, V)
        after_object, after_to_the = p[-3], p[-1]  # (V,): next is above / below / to; next is left / right
        vertical = scene.relation in ("above", "below")
        side = scene.relation if vertical else scene.relation.split()[2]  # above, below, left or right
        q = after_object if vertical else after_to_the
        direction.append(bool(q[ids[side]] > q[ids[opposite[side]]]))
        p_vert["vertical" if vertical else "horizontal"].append((after_object[ids["above"]]
                                                                  + after_object[ids["below"]]).item())
    return {"p_vertical_on_vertical": float(np.mean(p_vert["vertical"])),
            "p_vertical_on_horizontal": float(np.mean(p_vert["horizontal"])),
            "direction_acc": float(np.mean(direction))}
