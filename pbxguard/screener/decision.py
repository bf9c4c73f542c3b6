"""The decision rules between class scores and an answer, shared by the trained model and the compiled one
the engine runs (this module needs no scikit-learn).

- `DecisionRule`: blocking a live caller costs more than letting a machine through, so a class other than
  human is named only when it is its own `human_costs[class]` times likelier than human (a Bayes decision
  with that cost), and a hang-up-capable class only above its precision threshold; below it the rule abstains
  ("unknown"). It is chosen from validation scores by `DecisionRule.tune`, never from the training split.
- `EarlyDecisions`: per early horizon and class the score from which the prefix classifier's answer is taken
  before the window ends. `EarlyDecisions.tune` picks those on validation data: no class loses more than its
  budget of right answers to an early answer, and no live caller gets an early answer other than the one
  the whole window gives.
- `combine_scores`: the two-stage classifier's scores (dead air first, then the other classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pbxguard.screener.verdict import UNKNOWN

DEADAIR_CLASS = "silence"
HUMAN_CLASS = "human"
# The learned classes in the order ties are broken: the safe verdict first (a person), the hang-up-capable
# ones last.
TIE_ORDER = ("human", "machine", "silence", "noise", "music", "tone", "fax")
ABSTAIN = UNKNOWN
HUMAN_COSTS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)


def combine_scores(classes: Sequence[str], deadair_class: str, p_deadair: np.ndarray | None,
                   opening_classes: Sequence[str] | None, p_opening: np.ndarray | None) -> np.ndarray:
    """Class scores in `classes` order: P(dead air) = p_d per row and P(c) = (1 - p_d) * P(c | not dead air)
    from the opening stage's probabilities; a stage that is None (its class absent in training) scores 0."""
    rows = len(p_deadair) if p_deadair is not None else len(p_opening) if p_opening is not None else 0
    scores = np.zeros((rows, len(classes)))
    index = {c: k for k, c in enumerate(classes)}
    p_d = np.zeros(rows) if p_deadair is None else p_deadair
    if p_deadair is not None:
        scores[:, index[deadair_class]] = p_deadair
    if opening_classes is not None and p_opening is not None:
        scores[:, [index[c] for c in opening_classes]] = (1.0 - p_d)[:, None] * p_opening
    return scores


@dataclass(frozen=True)
class DecisionRule:
    """From class scores to a label: cost-weighted for live callers, thresholded, else `ABSTAIN`."""

    order: tuple[str, ...] = TIE_ORDER  # ties go to the earlier class
    human_costs: Mapping[str, float] = field(default_factory=dict)  # per class; 1.0 where absent
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def best(self, scores: Mapping[str, float]) -> str:
        """The class with the highest cost-weighted score: class c beats human only when it is
        `human_costs[c]` times likelier."""
        weighted = {c: scores[c] / (1.0 if c == HUMAN_CLASS else self.human_costs.get(c, 1.0)) for c in self.order if c in scores}
        return max(weighted, key=lambda c: weighted[c])  # max keeps the first of equal keys

    def decide(self, scores: Mapping[str, float]) -> str:
        label = self.best(scores)
        return label if scores[label] >= self.thresholds.get(label, 0.0) else ABSTAIN

    @classmethod
    def tune(cls, scores: Sequence[Mapping[str, float]], y: np.ndarray, min_precision: Mapping[str, float],
             max_false_block: float, order: tuple[str, ...] = TIE_ORDER) -> DecisionRule:
        """Chosen on held-out validation scores (never the test split).

        First the costs: while more than `max_false_block` of the live callers would get another class,
        the class that takes the most of them gets the next cost in HUMAN_COSTS (so a class that never
        takes a caller, dead air say, is not made harder to name because machines are). Then, per class,
        the lowest score threshold whose precision reaches the minimum; a class whose precision cannot be
        reached gets threshold 1.0 (never decided alone).
        """
        y = np.asarray(y)
        humans = [s for s, label in zip(scores, y) if label == HUMAN_CLASS]
        costs: dict[str, float] = {}
        capped: set[str] = set()
        while humans:
            rule = cls(order, dict(costs))
            taken = [rule.best(s) for s in humans]
            if np.mean([t != HUMAN_CLASS for t in taken]) <= max_false_block:
                break
            counts = {c: taken.count(c) for c in order if c != HUMAN_CLASS and c not in capped and taken.count(c)}
            if not counts:
                break
            worst = max(counts, key=lambda c: (counts[c], -order.index(c)))
            higher = [k for k in HUMAN_COSTS if k > costs.get(worst, 1.0)]
            if higher:
                costs[worst] = higher[0]
            else:
                capped.add(worst)
        rule = cls(order, dict(costs))
        labels = np.array([rule.best(s) for s in scores])
        thresholds = {}
        for c, floor in min_precision.items():
            column = np.array([s[c] for s in scores])
            picked = labels == c
            thresholds[c] = 1.0
            for t in np.unique(column[picked]):  # ascending: the first that reaches the precision keeps most recall
                chosen = picked & (column >= t)
                if np.mean(y[chosen] == c) >= floor:
                    thresholds[c] = float(t)
                    break
        return cls(order, dict(costs), thresholds)


NEVER = 2.0  # a threshold no score reaches
# The classes the prefix models may answer early. Fax and tones wait for their proof: only a proof is hung up,
# and an early unproven answer would take that from them. Dead air waits for the window too: nobody is there
# to wait, and a fax whose first CNG burst starts late in the window sounds like dead air until then. Machines
# and music wait: on held-out callers their early answers blocked twice as many live callers (README).
EARLY_CLASSES = ("human", "noise")
DIGITAL_SILENCE = "digital_silence"  # decided before the window's end only by its detector, on the prefix


@dataclass(frozen=True)
class EarlyDecisions:
    """Answers before the window's end, one horizon after another."""

    horizons_ms: tuple[int, ...]
    thresholds: tuple[Mapping[str, float], ...]  # per horizon: per class (and digital silence) the score needed
    rule: DecisionRule = DecisionRule()  # the window's live-caller costs: an early answer weighs callers as it does

    def decide(self, k: int, scores: Mapping[str, float], digital_silence: bool) -> str | None:
        """The answer at horizon `k`, or None to listen on."""
        if digital_silence:
            return DIGITAL_SILENCE if self.thresholds[k].get(DIGITAL_SILENCE, NEVER) <= 1.0 else None
        label = self.rule.best(scores)
        return label if scores[label] >= self.thresholds[k].get(label, NEVER) else None

    @staticmethod
    def tune(horizons_ms: Sequence[int], scores: Sequence[Sequence[Mapping[str, float]]], digital: Sequence[np.ndarray],
             final: np.ndarray, final_ms: np.ndarray, y: np.ndarray, budget: float, rule: DecisionRule = DecisionRule(),
             proven: np.ndarray | None = None, classes: Sequence[str] = EARLY_CLASSES,
             floor: float = 0.5) -> tuple[dict[str, float], ...]:
        """Per horizon, per class, the lowest score threshold (not below `floor`) whose early answers keep
        within `budget` of every class's clips the right answers of the window's `final` that they turn
        wrong (fixes do not buy errors; counted over all horizons so far). A class other than human must
        also stay above every live caller's score for it at that horizon: no person is blocked on an early
        guess; nor may an early answer take a clip whose window answer is `proven` (a fax whose CNG comes
        late is hung up only on its proof). `scores[k][i]` are clip i's prefix scores at horizon k and `digital[k][i]` whether that prefix
        is digital silence; a clip answered (proven) by `final_ms` before a horizon is not open to it. Each
        clip's candidate answer is `rule`'s cost-weighted best class, as in `decide`."""
        y, final = np.asarray(y), np.asarray(final)
        proven = np.zeros(len(y), dtype=bool) if proven is None else np.asarray(proven, dtype=bool)
        allowed = {c: int(np.floor(budget * np.sum(y == c))) for c in set(y)}
        lost = dict.fromkeys(allowed, 0)
        decided = np.zeros(len(y), dtype=bool)
        chosen = []

        def take(members: np.ndarray, label: str) -> bool:
            if np.any((y[members] == HUMAN_CLASS) & (label != HUMAN_CLASS)) or np.any(proven[members] & (final[members] != label)):
                return False
            delta = dict.fromkeys(allowed, 0)
            for i in members:
                delta[y[i]] += int(label != y[i] and final[i] == y[i])
            if any(lost[c] + d > allowed[c] for c, d in delta.items()):
                return False
            for c, d in delta.items():
                lost[c] += d
            decided[members] = True
            return True

        humans = y == HUMAN_CLASS
        for k, horizon in enumerate(horizons_ms):
            open_ = ~decided & (np.asarray(final_ms) > horizon)
            at_k: dict[str, float] = {}
            silent = np.flatnonzero(open_ & np.asarray(digital[k]))
            at_k[DIGITAL_SILENCE] = 0.0 if len(silent) and take(silent, DIGITAL_SILENCE) else NEVER  # never unseen
            best = [rule.best(s) for s in scores[k]]
            for label in classes:
                at_k[label] = NEVER
                free = open_ & ~decided & ~np.asarray(digital[k])  # a digital-silence prefix waits, as `decide` does
                candidates = np.array([i for i in np.flatnonzero(free) if best[i] == label], dtype=int)
                values = np.array([scores[k][i][label] for i in candidates])
                lowest = floor
                if label != HUMAN_CLASS and humans.any():
                    lowest = max(floor, float(np.nextafter(max(scores[k][int(i)].get(label, 0.0) for i in np.flatnonzero(humans)), 2.0)))
                for t in np.unique(values[values >= lowest])[::-1]:  # all clips at one score go together
                    if not take(candidates[values == t], label):
                        break
                    at_k[label] = float(t)
            chosen.append(at_k)
        return tuple(chosen)
