"""The leaderboard's tasks, defined once: each names what it measures and reads its figure from the metrics a
system's `evaluate` returns (the same keys `metrics.json` holds). A recipe lists the tasks it is scored on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from minivlm.data.questions import KINDS


@dataclass(frozen=True)
class Task:
    name: str
    label: str  # the column header
    read: Callable[[dict], float]  # metrics -> the figure
    higher_is_better: bool = True


def _key(name: str) -> Callable[[dict], float]:
    return lambda m: float(m[name])


def _shots(k: int) -> Callable[[dict], float]:
    return lambda m: float({int(s): v for s, v in m["fewshot_acc"].items()}[k])  # JSON turns the keys into text


def _kind(kind: str) -> Callable[[dict], float]:
    return lambda m: float(m["vqa_acc_by_type"][kind])


TASKS = {t.name: t for t in (
    Task("zero_shot", "zero-shot (96 prompts)", _key("zero_shot_acc")),
    Task("heldout_zero_shot", "zero-shot, held-out pairs", _key("heldout_acc")),
    Task("i2t_r1", "image→text R@1", _key("i2t_r1")),
    Task("t2i_r1", "text→image R@1", _key("t2i_r1")),
    Task("two_obj_i2t_r1", "2-object image→text R@1", _key("two_obj_i2t_r1")),
    Task("two_obj_t2i_r1", "2-object text→image R@1", _key("two_obj_t2i_r1")),
    Task("caption_ce", "caption CE (nats/token)", _key("val_ce"), higher_is_better=False),
    Task("caption_em", "caption EM", _key("caption_em")),
    Task("caption_em_1obj", "caption EM, 1 object", _key("caption_em_1obj")),
    Task("caption_em_2obj", "caption EM, 2 objects", _key("caption_em_2obj")),
    Task("caption_heldout_em", "caption EM, held-out pairs", _key("heldout_em")),
    Task("vqa", "VQA", _key("vqa_acc")),
    *(Task(f"vqa_{kind.replace('/', '')}", f"VQA {kind}", _kind(kind)) for kind in KINDS),  # vqa_yesno
    Task("fewshot_0", "few-shot, 0 shots", _shots(0)),
    Task("fewshot_4", "few-shot, 4 shots", _shots(4)),
    Task("t2i_match_1obj", "text→image, 1 object", _key("t2i_match_1obj")),
    Task("t2i_match_2obj", "text→image, 2 objects", _key("t2i_match_2obj")),
    Task("t2i_match_1obj_rerank", "text→image, 1 object, CLIP-reranked", _key("t2i_match_1obj_rerank8")),
    Task("recon_judge_acc", "reconstructions read right", _key("recon_judge_acc")),
    Task("judge_acc", "judge on real images", _key("judge_acc")),
    Task("samples_per_s", "training samples/s", _key("samples_per_s")),
)}


def score(tasks: tuple[str, ...], metrics: dict) -> dict[str, float]:
    """{task: figure} for each of a system's tasks; a task whose metric is missing is a ValueError (the recipe
    declares a task its evaluation does not report)."""
    out = {}
    for name in tasks:
        if name not in TASKS:
            raise ValueError(f"tasks: {name!r} is no leaderboard task (known: {', '.join(TASKS)})")
        try:
            out[name] = TASKS[name].read(metrics)
        except KeyError as e:
            raise ValueError(f"tasks: {name!r} needs the metric {e} that the evaluation did not report") from None
    return out
