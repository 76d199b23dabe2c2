"""Search strategies of the NAS literature, on hwofa's objective, for comparison with the DEAP search.

Both maximise the predicted top-1 of the *repaired* arch (the same bounded repair into the budget as
every hwofa loop, evolve/operators.py) and stop after `evaluations` distinct archs have been given to
the predictor (or after 20x as many draws, so they end however small the space), as evolve/baselines.py
counts them:
- REINFORCE, after Zoph & Le 2017 (NASNet's controller): a policy over the genome's categorical
  decisions, trained with the policy gradient on batches of sampled archs. Deviation from the paper:
  independent softmax logits per gene instead of an LSTM controller. Reward = predicted top-1 of the
  repaired arch; advantage = reward minus an exponential moving-average baseline, divided by the
  batch's reward spread (top-1 differences are a fraction of a point); only the genes active in the
  sampled genome get a gradient (an LSTM controller emits no others); an entropy bonus keeps it
  exploring; Adam ascent. The gradient is taken at the sampled genome: the repair is part of the
  environment. Once the policy has nearly collapsed it draws archs it has already seen (free, not
  evaluations) until the draw limit: `result.evaluations` then falls short of `evaluations`.
- TPE (Bergstra et al. 2011) through optuna's `TPESampler`: one categorical parameter per gene, all
  asked at once (inactive genes are parameters the objective ignores). Multivariate (Falkner et al.
  2018's joint kernel): optuna's independent TPE re-sorts every trial once per parameter, which took
  110-310 s for 1000 evaluations here against 23 s, for no better a pick in that probe. optuna is
  optional (the `bench` extra); `tpe` imports it.
"""

from __future__ import annotations

import logging
import random
import time
import warnings

import numpy as np
from deap import base, creator

from evolve._fast import AccuracyCache, AccuracyModel, GenomeLayout, LatencyModel
from evolve.ea import SearchResult, _result
from evolve.operators import check_feasible, make_toolbox
from supernet import SearchSpace


def _toolbox(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel,
             budget_ms: float, rng: random.Random) -> base.Toolbox:
    _, fallback = check_feasible(latency, budget_ms)
    return make_toolbox(space, accuracy, latency, budget_ms, rng, fallback, 0.0)


def _score(tb: base.Toolbox, genomes: list[list[int]]) -> list[float]:
    """Repair copies of `genomes` into the budget, evaluate them (one predictor batch), return their top-1."""
    inds = [creator.Individual(g) for g in genomes]
    for ind in inds:
        ind.latency_ms = tb.repair(ind)
    tb.evaluate(inds)
    return [ind.fitness.values[0] for ind in inds]


class Policy:
    """Independent categorical logits per gene (padded to the widest gene), updated by Adam ascent."""

    def __init__(self, ranges: list[int], lr: float) -> None:
        width = max(ranges)
        self.valid = np.arange(width)[None, :] < np.asarray(ranges)[:, None]   # (genes, width)
        self.logits = np.zeros(self.valid.shape)
        self.lr, self.m, self.v, self.t = lr, np.zeros(self.valid.shape), np.zeros(self.valid.shape), 0

    def probs(self) -> np.ndarray:
        z = np.where(self.valid, self.logits, -np.inf)
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def sample(self, n: int, gen: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(self.probs(), 1)
        u = gen.random((n, len(cum), 1))
        return np.minimum((u >= cum[None, :, :-1]).sum(2), self.valid.sum(1) - 1)

    def entropy(self) -> float:
        p = self.probs()
        return float(-(p * np.log(np.where(p > 0, p, 1.0))).sum())

    def step(self, actions: np.ndarray, active: np.ndarray, advantage: np.ndarray, entropy_weight: float) -> None:
        """One Adam ascent step on mean(advantage * log pi(actions)) + entropy_weight * entropy."""
        p = self.probs()
        onehot = np.arange(p.shape[1])[None, None, :] == actions[:, :, None]
        grad = ((onehot - p[None]) * (advantage[:, None, None] * active[:, :, None])).mean(0)
        logp = np.log(np.where(p > 0, p, 1.0))
        h = -(p * logp).sum(1, keepdims=True)
        grad += entropy_weight * np.where(self.valid, -p * (logp + h), 0.0)
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad ** 2
        m_hat, v_hat = self.m / (1 - 0.9 ** self.t), self.v / (1 - 0.999 ** self.t)
        self.logits += np.where(self.valid, self.lr * m_hat / (np.sqrt(v_hat) + 1e-8), 0.0)


def _active_mask(layout: GenomeLayout, genomes: np.ndarray) -> np.ndarray:
    mask = np.zeros(genomes.shape)
    for row, g in zip(mask, genomes.tolist(), strict=True):
        row[layout.active(g)] = 1.0
    return mask


def reinforce(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
              rng: random.Random, evaluations: int = 2624, batch: int = 16, lr: float = 0.1,
              entropy_weight: float = 0.01, baseline_decay: float = 0.9) -> SearchResult:
    """REINFORCE over the genome's decisions (independent logits, moving-average baseline), with the
    repair, for `evaluations` distinct archs. `result.settings["curve"]` is each batch's mean reward.
    The defaults won a small grid (lr 0.05-0.4, batch 16-64, entropy 0-0.05) at 2000 evaluations on the
    tree predictor shipped then and the cpu-onnxruntime LUT, seeds 100-101 (not the benchmark's)."""
    t0 = time.perf_counter()
    tb = _toolbox(space, accuracy, latency, budget_ms, rng)
    policy, gen = Policy(tb.layout.ranges, lr), np.random.default_rng(rng.getrandbits(64))
    baseline: float | None = None
    curve: list[float] = []
    draws = 0
    while len(tb.archive) < evaluations and draws < 20 * evaluations:
        actions = policy.sample(min(batch, evaluations - len(tb.archive)), gen)
        draws += len(actions)
        reward = np.asarray(_score(tb, actions.tolist()))
        curve.append(float(reward.mean()))
        baseline = curve[-1] if baseline is None else baseline_decay * baseline + (1 - baseline_decay) * curve[-1]
        advantage = (reward - baseline) / (reward.std() + 1e-6)
        policy.step(actions, _active_mask(tb.layout, actions), advantage, entropy_weight)
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"evaluations": evaluations, "batch": batch, "lr": lr, "entropy_weight": entropy_weight,
                    "baseline_decay": baseline_decay, "draws": draws, "final_entropy": policy.entropy(),
                    "curve": curve, "algorithm": "REINFORCE (Zoph & Le 2017 style; independent logits, "
                                                 "moving-average baseline, entropy bonus), repair"})


def tpe(space: SearchSpace, accuracy: AccuracyModel | AccuracyCache, latency: LatencyModel, budget_ms: float,
        rng: random.Random, evaluations: int = 2624, startup_trials: int = 20) -> SearchResult:
    """TPE (optuna's multivariate `TPESampler`, seeded from `rng`) with the repair, for `evaluations`
    distinct archs."""
    import optuna

    t0 = time.perf_counter()
    tb = _toolbox(space, accuracy, latency, budget_ms, rng)
    optuna.logging.set_verbosity(logging.WARNING)
    genes = {f"g{i}": optuna.distributions.CategoricalDistribution(list(range(n)))
             for i, n in enumerate(tb.layout.ranges)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=rng.getrandbits(32), n_startup_trials=startup_trials,
                                             multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    trials = 0
    while len(tb.archive) < evaluations and trials < 20 * evaluations:
        trial = study.ask(genes)
        trials += 1
        study.tell(trial, _score(tb, [[trial.params[name] for name in genes]])[0])
    return _result(tb.layout, tb.archive, time.perf_counter() - t0,
                   {"evaluations": evaluations, "startup_trials": startup_trials, "trials": trials,
                    "optuna": optuna.__version__,
                    "algorithm": "TPE (optuna TPESampler, multivariate, one categorical per gene), repair"})
