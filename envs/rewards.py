"""The dual reward: a weighted sum of the image judge's and the text judge's scores.

``reward = (1 - alpha) * image_overall + alpha * text_score``; with the reference
gate on, the reward is 0 unless the answer cites 1 to 4 valid reference images
(both judgements are still computed and reported).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MIN_GATED_REFERENCES = 1
MAX_GATED_REFERENCES = 4


@dataclass(frozen=True)
class RewardTerms:
    """The parts of one episode's reward.

    Attributes:
        image: The image judge's overall score in [0, 1].
        text: The text judge's score in {0, 0.25, 0.5, 0.75, 1}.
        alpha: Weight of the text score.
        gated: True when the reference gate set the reward to 0.
        reward: The final reward.
    """

    image: float
    text: float
    alpha: float
    gated: bool
    reward: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passes_reference_gate(n_references: int) -> bool:
    """True when an answer with ``n_references`` valid references may be paid."""
    return MIN_GATED_REFERENCES <= n_references <= MAX_GATED_REFERENCES


def combine(image: float, text: float, alpha: float) -> float:
    """``(1 - alpha) * image + alpha * text``, rounded to 6 decimals.

    Raises:
        ValueError: when ``alpha`` is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}.")
    return round((1.0 - alpha) * image + alpha * text, 6)


def compute_reward(
    image: float, text: float, alpha: float, n_references: int, reference_gate: bool = True
) -> RewardTerms:
    """Combine the two judgements into the episode's reward.

    Args:
        image: The image judge's overall score.
        text: The text judge's score.
        alpha: Weight of the text score.
        n_references: Valid references in the answer.
        reference_gate: Pay 0 unless ``n_references`` is within 1 to 4.
    """
    gated = reference_gate and not passes_reference_gate(n_references)
    reward = 0.0 if gated else combine(image, text, alpha)
    return RewardTerms(image=float(image), text=float(text), alpha=float(alpha), gated=gated,
                       reward=reward)


def no_answer_terms(alpha: float) -> RewardTerms:
    """Terms of an episode that ended without an answer (reward 0)."""
    return RewardTerms(image=0.0, text=0.0, alpha=float(alpha), gated=False, reward=0.0)
