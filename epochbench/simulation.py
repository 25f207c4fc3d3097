"""Simulated reports shaped like the data epochbench gets, and the claims the decision rules make on them.

The calibration (tests/test_decisions.py, benchmarks/calibration.py) needs
thousands of simulated reports per setting, so the rules of
`epochbench.decisions` are applied here to a whole batch at once, through the
same step-down functions (`epochbench.stepdown`); a test checks that every
verdict agrees with `decisions.analyze` on the same tables.

A simulated accuracy, in points, is BASE + the true mean at (architecture,
strategy, n) + a replicate effect (the split and seed make some replicates
easier, at every n and strategy) + cell noise of one of SHAPES:

- normal: independent, one point;
- ar1: correlated along n, rho = 0.7 (neighbouring n share most of their luck);
- t3: Student's t with 3 degrees of freedom, scaled to one point (heavy tails);
- skewed: skewed to the left, its spread falling from 2 points at n = 1 to
  0.5 at n = N (a short run that now and then fails): minus a unit
  exponential, centred, times the spread;
- whole_images: normal, then rounded to whole images of VALIDATION_IMAGES.
"""

import itertools

import numpy as np

from . import decisions, stepdown

BASE = 70.0
VALIDATION_IMAGES = 360
SHAPES = ("normal", "ar1", "t3", "skewed", "whole_images")
AR1_RHO = 0.7
SKEWED_SPREAD = (2.0, 0.5)
VERDICTS = ("best", "worse", "equivalent", "unresolved")
STRATEGY_CODES = ("better", "worse", "equivalent", "unresolved")


def cell_noise(rng, shape: str, size: tuple) -> np.ndarray:
    """Noise in accuracy points, n along the last axis."""
    if shape in ("normal", "whole_images"):
        return rng.normal(0.0, 1.0, size)
    if shape == "t3":
        return rng.standard_t(3, size) / np.sqrt(3.0)
    if shape == "ar1":
        noise = rng.normal(0.0, 1.0, size)
        for n in range(1, size[-1]):
            noise[..., n] = AR1_RHO * noise[..., n - 1] + np.sqrt(1 - AR1_RHO**2) * noise[..., n]
        return noise
    if shape == "skewed":
        spread = np.linspace(*SKEWED_SPREAD, size[-1])
        return -(rng.exponential(1.0, size) - 1.0) * spread
    raise ValueError(f"unknown noise shape {shape!r}")


def accuracies(rng, shape: str, truth, reports: int, replicates: int, replicate_effect: float = 1.0) -> np.ndarray:
    """(reports, *truth.shape[:-1], replicates, N) accuracies as fractions around BASE + truth (points).

    `truth` is (architectures, strategies, N) or any shape ending in N; the
    replicate effect is shared by every n and strategy of an architecture.
    """
    truth = np.asarray(truth, float)
    lead = truth.shape[:-1]
    size = (reports, *lead, replicates, truth.shape[-1])
    effect_shape = (reports, *lead[:1], *(1,) * (len(lead) - 1), replicates, 1)
    points = (BASE + truth[..., None, :] + rng.normal(0.0, replicate_effect, effect_shape)
              + cell_noise(rng, shape, size))
    fractions = points / 100
    if shape == "whole_images":
        fractions = np.round(fractions * VALIDATION_IMAGES) / VALIDATION_IMAGES
    return fractions


def _pairs(size: int) -> list:
    return list(itertools.combinations(range(size), 2))


def equivalence_can_be_false(true_differences, margin: float) -> bool:
    """Whether any true difference (a fraction) an equivalence test compares is a margin or more, so could be false.

    Where none is, the equivalence tests, the slowest part of a report, can
    only make true claims and change no other verdict: the batch skips them
    and counts those verdicts as unresolved (analyze would say equivalent).
    """
    return bool((np.abs(np.asarray(true_differences, float)) >= margin - 1e-12).any())


def sweep_claims(valid, truth, margin: float, budget: dict) -> dict:
    """The n-sweep's verdicts on a batch of reports, and which of them are false.

    `valid` (reports, architectures, replicates, N); `truth` (architectures,
    N) in points. Returns verdict (reports, architectures, N) codes into
    VERDICTS, worse_than (index of n, -1), overfits (reports, architectures),
    and false_overfits, false_worse, false_equivalent (reports,).
    """
    reports, archs, k, size = valid.shape
    truth = np.asarray(truth, float) / 100
    means = valid.mean(axis=2)
    best = means.argmax(axis=2)  # the first on ties, as decisions does
    # The decline family: every n < N against N, every architecture at once.
    decline_rows = np.swapaxes(valid[..., :-1] - valid[..., -1:], -1, -2).reshape(reports, archs * (size - 1), k)
    decline_p = stepdown.family_p(decline_rows, 0.0, 1).reshape(reports, archs, size - 1)
    decline_t = stepdown.statistics(decline_rows, 0.0, 1)[0].reshape(reports, archs, size - 1)
    pairs = _pairs(size)
    first, second = np.array(pairs).T
    pair_rows = np.swapaxes(valid[..., first] - valid[..., second], -1, -2).reshape(reports, archs * len(pairs), k)
    pair_p = stepdown.family_p(pair_rows, 0.0, 0).reshape(reports, archs, len(pairs))
    pair_index = np.full((size, size), -1)
    pair_index[first, second] = pair_index[second, first] = np.arange(len(pairs))
    n = np.arange(size)
    p_worse = np.take_along_axis(pair_p, pair_index[best[..., None], n], axis=2)  # (reports, archs, N)
    # Equivalence of every n != best with the best, one family.
    others = np.array([[[i for i in range(size) if i != b] for b in row] for row in best])  # (reports, archs, N-1)
    at_best = np.take_along_axis(valid, best[:, :, None, None], axis=3)
    to_best = np.take_along_axis(valid, others[:, :, None, :], axis=3) - at_best
    p_equivalence = np.full((reports, archs, size), np.nan)
    if equivalence_can_be_false(truth.max(axis=-1) - truth.min(axis=-1), margin):
        equivalence = stepdown.equivalence_p(np.swapaxes(to_best, -1, -2).reshape(reports, archs * (size - 1), k),
                                             margin)
        np.put_along_axis(p_equivalence, others, equivalence.reshape(reports, archs, size - 1), axis=2)

    is_best = n == best[..., None]
    difference = means - np.take_along_axis(means, best[..., None], axis=2)
    worse = ~is_best & (p_worse < budget["worse"]) & (difference < 0)
    equivalent = ~is_best & ~worse & (p_equivalence < budget["equivalent"])
    worse_than = np.where(worse, best[..., None], -1)
    # n = N worse than the decline test's strongest n, where the pairs have not said so already.
    order = np.lexsort((-decline_t, decline_p), axis=2)[..., 0]  # smallest p, then largest t
    source_p = np.take_along_axis(decline_p, order[..., None], axis=2)[..., 0]
    by_decline = (source_p < budget["overfits"]) & ~worse[..., -1] & ~is_best[..., -1]
    worse[..., -1] |= by_decline
    equivalent[..., -1] &= ~by_decline
    worse_than[..., -1] = np.where(by_decline, order, worse_than[..., -1])
    verdict = np.select([is_best, worse, equivalent], [0, 1, 2], 3)

    true_means = truth[None, :, :].repeat(reports, axis=0)
    reference = np.take_along_axis(true_means, np.maximum(worse_than, 0), axis=2)
    false_worse = worse & (true_means >= reference - 1e-12)
    true_best = np.take_along_axis(true_means, best[..., None], axis=2)
    false_equivalent = equivalent & (np.abs(true_means - true_best) >= margin - 1e-12)
    overfits = worse[..., -1]
    return dict(verdict=verdict, worse_than=worse_than, overfits=overfits,
                false_overfits=false_worse[..., -1].any(axis=1), false_worse=false_worse.any(axis=(1, 2)),
                false_equivalent=false_equivalent.any(axis=(1, 2)),
                false_by_architecture=false_worse.any(axis=2) | false_equivalent.any(axis=2))


def strategy_claims(test, truth, margin: float, budget: dict) -> dict:
    """The strategy table's verdicts on a batch of reports, and which are false.

    `test` (reports, architectures, strategies, replicates, N), fine_tune
    first; `truth` (architectures, strategies, N) in points. Rows are ordered
    as `decisions.compare_strategies` orders them: strategy (by name is the
    caller's business), architecture, n.
    """
    reports, k = test.shape[0], test.shape[3]
    differences = test[:, :, 1:] - test[:, :, :1]  # (reports, archs, strategies-1, k, N)
    rows = np.moveaxis(differences, 1, 2)  # (reports, strategies-1, archs, k, N)
    rows = np.swapaxes(rows, -1, -2).reshape(reports, -1, k)
    p = stepdown.family_p(rows, 0.0, 0)
    true_differences = np.asarray(truth, float)[:, 1:] - np.asarray(truth, float)[:, :1]
    p_equivalence = (stepdown.equivalence_p(rows, margin) if equivalence_can_be_false(true_differences / 100, margin)
                     else np.full(rows.shape[:-1], np.nan))
    mean_difference = rows.mean(axis=-1)
    resolved = p < budget["strategy_difference"]
    verdict = np.select([resolved & (mean_difference > 0), resolved,
                         p_equivalence < budget["strategy_equivalent"]], [0, 1, 2], 3)
    truth = np.asarray(truth, float) / 100
    true_difference = np.moveaxis(truth[:, 1:] - truth[:, :1], 0, 1).reshape(-1)
    false = (((verdict == 0) & (true_difference <= 1e-12)) | ((verdict == 1) & (true_difference >= -1e-12))
             | ((verdict == 2) & (np.abs(true_difference) >= margin - 1e-12)))
    return dict(strategy_verdict=verdict, false_strategy=false.any(axis=1))


def report_claims(valid, truth, test=None, strategy_truth=None, margin: float = decisions.EQUIVALENCE_MARGIN,
                  batch: int = 20) -> dict:
    """Every claim a batch of simulated reports makes, with the report's own budget; see sweep_claims.

    `test`/`strategy_truth` add the strategy table (and its share of the
    budget). `false_claim` (reports,) is the family-wise error: any false claim.
    """
    budget = decisions.error_budget(with_strategies=test is not None)
    parts = []
    for start in range(0, len(valid), batch):  # keeps the resampled statistics in memory
        part = sweep_claims(valid[start:start + batch], truth, margin, budget)
        if test is not None:
            part.update(strategy_claims(test[start:start + batch], strategy_truth, margin, budget))
        parts.append(part)
    claims = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    false = claims["false_overfits"] | claims["false_worse"] | claims["false_equivalent"]
    claims["false_claim"] = false | claims["false_strategy"] if test is not None else false
    return claims


def race_claims(valid, truth, design, margin: float = decisions.EQUIVALENCE_MARGIN, batch: int = 20) -> dict:
    """A sequential design's race (`epochbench.sequential.race`) on a batch of reports of the n-sweep.

    `valid` (reports, architectures, replicates >= the last look's, N); `design`
    a `sequential.Design` (its seeds are ignored: replicates are used in
    order). Each look sees the replicates up to it, NaN beyond an
    architecture's stop, and decides at the look's nominal levels; each
    architecture's claims are those of its stopping look. Returns state
    (reports, architectures) codes into sequential.STATES, look (its stopping
    look, 1-based), replicates, overfits, false_claim (reports,): any false
    claim of any architecture, and runs per report.
    """
    from . import sequential

    budget = decisions.error_budget()
    truth = np.asarray(truth, float)
    reports, archs, _, size = valid.shape
    states = np.full((reports, archs), sequential.STATES.index("open"))
    stop_look = np.zeros((reports, archs), int)
    overfits = np.zeros((reports, archs), bool)
    false = np.zeros((reports, archs), bool)
    for look, k in enumerate(design.looks):
        still = states == sequential.STATES.index("open")
        if not still.any():
            break
        levels = sequential.look_budget(design, look, budget, decisions.TWO_SIDED)
        last = look == len(design.looks) - 1
        # As the pipeline's race: each look analyses the open architectures alone, so the reports are grouped
        # by which are open, and each group's are one family.
        for pattern in np.unique(still, axis=0):
            if not pattern.any():
                continue
            group = np.flatnonzero((still == pattern).all(axis=1))
            archs_open = np.flatnonzero(pattern)
            seen = valid[group][:, archs_open, :k]
            parts = [sweep_claims(seen[start:start + batch], truth[archs_open], margin, levels)
                     for start in range(0, len(group), batch)]
            claims = {key: np.concatenate([part[key] for part in parts])
                      for key in ("verdict", "overfits", "false_by_architecture")}
            verdict = claims["verdict"]
            at_max_n = verdict[..., -1]
            settled = (verdict[..., :-1] == 1) | (verdict[..., :-1] == 2)
            holds = (at_max_n == 2) | ((at_max_n == 0) & settled.all(axis=-1))
            futile = ((design.futility and not last and design.fractions[look] >= sequential.FUTILITY_FROM)
                      & (at_max_n == 0))
            now = np.select([claims["overfits"], holds, futile], [0, 1, 2], 4 if last else 3)
            cells = np.ix_(group, archs_open)
            states[cells] = now
            stopped = now != sequential.STATES.index("open")
            stop_look[cells] = np.where(stopped, look + 1, stop_look[cells])
            overfits[cells] = np.where(stopped, claims["overfits"], overfits[cells])
            false[cells] = np.where(stopped, claims["false_by_architecture"], false[cells])
    replicates = np.asarray(design.looks)[stop_look - 1]
    return dict(state=states, look=stop_look, replicates=replicates, overfits=overfits, false_claim=false.any(axis=1),
                runs=replicates.sum(axis=1) * size)
