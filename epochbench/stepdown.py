"""Step-down max-T tests over replicates: the machinery behind every claim the report makes.

A family is a set of hypotheses about mean paired differences, each row of
`differences` (rows x replicates, NaN where a replicate is missing), tested
together by step-down max-T (Westfall & Young, "Resampling-based multiple
testing", 1993, Algorithm 2.8): a claim pays for how the comparisons go
together, not for each one separately as Holm does. The null distribution
comes from randomising whole replicates in two ways, and a claim needs both
(its adjusted p is the larger of the two):

- Sign flips: every replicate's differences change sign together, all 2**k
  patterns where k <= 11, a seeded Monte-Carlo sample otherwise. Exact
  whenever each replicate's vector of differences is symmetric about the
  null, whatever its dependence along n, its spread at each n and its
  rounding to whole images. With k replicates no p can be below 1 / 2**k
  (one-sided) or 2 / 2**k (two-sided): three replicates can never reach 5%.
- The studentized bootstrap of replicates (Romano & Wolf, "Exact and
  approximate stepdown methods for multiple hypothesis testing", JASA 2005):
  T* = (mean* - mean) / se* over resampled replicates, which reproduces skew
  in the differences (Hall, "The bootstrap and Edgeworth expansion", 1992).

Why both: where a short run now and then fails (accuracies skewed to the
left, their spread falling with n) the differences are skewed, and sign
flips alone, like t-tests, claim a difference in 11-19% of reports in which
no mean differs; the bootstrap alone claims one where all replicates agree
to the last image (it has nothing to resample). Tried and dropped:
permutations of the n within a replicate (they mix an n = 1 far below the
rest into every comparison, and found nothing in our own default
experiment), a Dirichlet-weighted bootstrap and Mammen's wild bootstrap (10-30%
false claims), and bootstrap studentizations that do not collapse for
resamples with few distinct replicates (8-40%): the bootstrap's caution with
eight replicates or fewer is the price of not being fooled by skew. Measured
in benchmarks/results/calibration.csv.

A spread below TOLERANCE is zero: identical differences (three replicates
each one image apart) have t = +-inf and the sign flips decide, with their
floor of 1 / 2**k, where a t-test reports p = 1e-28.
"""

import functools
import itertools

import numpy as np

TOLERANCE = 1e-9  # accuracies are fractions: a spread below this is rounding, not data (one image in 10**9)
RESAMPLES = 2000  # bootstrap resamples, and sign patterns where 2**k is more than this
SEED = 0  # the randomisations are seeded: the same table always gives the same report
EXACT_SIGN_FLIPS = 11  # up to 2**11 = 2048 patterns are enumerated


@functools.lru_cache(maxsize=64)
def sign_patterns(k: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(patterns, k) signs other than the identity: all 2**k - 1 for k <= 11, else `resamples` drawn at random."""
    if k <= EXACT_SIGN_FLIPS:
        patterns = np.array(list(itertools.product([1.0, -1.0], repeat=k)))[1:]
    else:
        patterns = np.random.default_rng(seed).choice([1.0, -1.0], size=(resamples, k))
    patterns.setflags(write=False)
    return patterns


@functools.lru_cache(maxsize=64)
def bootstrap_counts(k: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, k): how often each replicate is drawn in each bootstrap resample of k replicates."""
    drawn = np.random.default_rng(seed + 1).integers(0, k, size=(resamples, k))
    counts = np.zeros((resamples, k))
    np.add.at(counts, (np.arange(resamples)[:, None], drawn), 1.0)
    counts.setflags(write=False)
    return counts


def t_from_sums(total, total_sq, count, center=0.0) -> np.ndarray:
    """(mean - center) / standard error from sums over replicates; a spread below TOLERANCE counts as none.

    Written for speed (the calibration evaluates it billions of times): few
    temporaries, and the degenerate cases fixed up only where they occur.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = total / count
        variance = total_sq - total * shift  # (n - 1) * sample variance
        variance /= count - 1
        if not np.isscalar(center) or center != 0.0:
            shift = shift - center
        t = shift * np.sqrt(count / variance)
        # Sums of squares lose the last bits of a spread to the size of the values: the tolerance grows with it.
        scale = TOLERANCE * (1 + 100 * np.sqrt(total_sq / count))
        degenerate = ~(variance >= scale * scale)  # also count <= 1
    if degenerate.any():
        shift = np.broadcast_to(shift, t.shape)[degenerate]
        t[degenerate] = np.where(np.abs(shift) < TOLERANCE, 0.0, np.copysign(np.inf, shift))
    return t


def statistics(differences, centers, directions, patterns=None, counts=None):
    """Observed t per row and its sign-flip and bootstrap counterparts.

    `differences` (..., rows, k); `centers` (rows,): each row's null mean;
    `directions` (rows,): +1 tests mean > center, -1 mean < center, 0 two-sided
    (|t|). Returns (observed (..., rows), flipped (..., patterns, rows),
    bootstrapped (..., resamples, rows)).
    """
    differences = np.asarray(differences, float)
    k = differences.shape[-1]
    centers = np.broadcast_to(np.asarray(centers, float), differences.shape[-2:-1])
    directions = np.broadcast_to(np.asarray(directions, float), differences.shape[-2:-1])
    patterns = sign_patterns(k) if patterns is None else patterns
    counts = bootstrap_counts(k) if counts is None else counts
    present = np.isfinite(differences)
    count = present.sum(axis=-1)
    # Sign flips act on the differences with each row's null imposed.
    imposed = np.where(present, differences - centers[:, None], 0.0)
    squares = (imposed**2).sum(axis=-1)
    observed = t_from_sums(imposed.sum(axis=-1), squares, count)
    flipped = t_from_sums(imposed @ patterns.T, squares[..., :, None], count[..., :, None])
    # The bootstrap resamples the differences themselves and centres each resample at the observed mean.
    filled = np.where(present, differences, 0.0)
    boot_count = count[..., :, None] if present.all() else present.astype(float) @ counts.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = filled.sum(axis=-1) / count
    bootstrapped = t_from_sums(filled @ counts.T, (filled * filled) @ counts.T, boot_count, center=mean[..., :, None])

    def oriented(t):  # rows last; NaN (a row or resample without two replicates) is no evidence: -inf
        t = np.abs(t) if (directions == 0).all() else np.where(directions[:, None] == 0, np.abs(t), directions[:, None] * t)
        t[np.isnan(t)] = -np.inf
        return np.swapaxes(t, -1, -2)

    return oriented(observed[..., None])[..., 0, :], oriented(flipped), oriented(bootstrapped)


def stepdown_p(observed, resampled) -> np.ndarray:
    """Westfall & Young's step-down max-T adjusted p-values, (1 + exceedances) / (1 + resamples).

    `observed` (..., rows), `resampled` (..., draws, rows), larger = more
    evidence. The hypothesis with the j-th largest statistic is compared with
    the maximum over it and every hypothesis below it, in every draw; the
    adjusted p-values are then made monotone in that order.
    """
    observed = np.asarray(observed, float)
    order = np.argsort(-observed, axis=-1, kind="stable")
    ordered = np.take_along_axis(observed, order, axis=-1)
    draws = np.take_along_axis(resampled, order[..., None, :], axis=-1)
    successive_max = np.flip(np.maximum.accumulate(np.flip(draws, axis=-1), axis=-1), axis=-1)
    # Ties count as exceedances (the identity's mirror image in a two-sided sign flip is one).
    with np.errstate(invalid="ignore"):
        threshold = np.where(np.isfinite(ordered), ordered - 1e-12 * (1 + np.abs(ordered)), ordered)
    exceed = (successive_max >= threshold[..., None, :]).sum(axis=-2)
    p = np.maximum.accumulate((1.0 + exceed) / (1.0 + resampled.shape[-2]), axis=-1)
    adjusted = np.empty_like(p)
    np.put_along_axis(adjusted, order, p, axis=-1)
    return np.minimum(adjusted, 1.0)


def family_p(differences, centers=0.0, directions=0) -> np.ndarray:
    """Adjusted p of every row of one family: the larger of the sign-flip and the bootstrap step-down p.

    `centers` (rows,) is each row's null mean, `directions` (rows,) +1 for
    mean > center, -1 for mean < center, 0 two-sided. NaN where a row has
    fewer than two replicates.
    """
    differences = np.asarray(differences, float)
    if differences.shape[-2] == 0:
        return np.zeros(differences.shape[:-1])
    observed, flipped, bootstrapped = statistics(differences, centers, directions)
    p = np.maximum(stepdown_p(observed, flipped), stepdown_p(observed, bootstrapped))
    return np.where(np.isfinite(differences).sum(axis=-1) >= 2, p, np.nan)


def equivalence_p(differences, margin: float) -> np.ndarray:
    """Adjusted p that each row's mean difference lies within +-margin: the larger of the sign-flip and bootstrap p.

    Two one-sided tests per row (Schuirmann 1987), mean > -margin and mean <
    +margin, every one of them in one step-down family: a false
    "equivalent" needs a false rejection there. NaN below two replicates.
    """
    differences = np.asarray(differences, float)
    rows = differences.shape[-2]
    if rows == 0:
        return np.zeros(differences.shape[:-1])
    both = family_p(np.concatenate([differences, differences], axis=-2),
                    np.r_[np.full(rows, -margin), np.full(rows, margin)], np.r_[np.ones(rows), -np.ones(rows)])
    return np.maximum(both[..., :rows], both[..., rows:])


def paired_se(differences) -> np.ndarray:
    """Standard error of the mean of each row of differences (NaN where fewer than two replicates)."""
    differences = np.atleast_2d(np.asarray(differences, float))
    count = np.isfinite(differences).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.nansum(differences, axis=1, keepdims=True) / count
        variance = np.nansum((differences - mean) ** 2, axis=1, keepdims=True) / (count - 1)
        return np.where(count > 1, np.sqrt(variance / count), np.nan)[:, 0]


def simultaneous_half_width(differences, confidence: float = 0.95) -> np.ndarray:
    """Half-width of simultaneous intervals for the rows' mean differences: c * se, c the bootstrap quantile of max |T*|.

    Studentized bootstrap, single step (Romano & Wolf 2005): the intervals
    cover every row's mean at once, so the one a reader's eye picks still
    covers its mean. Inf where the bootstrap cannot bound it (few replicates).
    """
    differences = np.asarray(differences, float)
    if differences.shape[-2] == 0 or differences.shape[-1] < 2:
        return np.full(differences.shape[:-1], np.nan)
    _, _, bootstrapped = statistics(differences, 0.0, 0)
    critical = np.quantile(bootstrapped.max(axis=-1), confidence, axis=-1, method="higher")
    return critical[..., None] * paired_se(differences)


def smallest_p(k: int, two_sided: bool) -> float:
    """The smallest p a sign-flip test over k replicates can give: 1 / 2**k one-sided, 2 / 2**k two-sided."""
    return (2.0 if two_sided else 1.0) / 2.0**k if k <= EXACT_SIGN_FLIPS else 1.0 / (1 + RESAMPLES)


def replicates_needed(alpha: float, two_sided: bool):
    """The fewest replicates with which a claim at level alpha is possible at all (sign-flip floor below alpha).

    None where no number is: a level below 1 / (1 + RESAMPLES), as an early look of a sequential design can have.
    """
    return next((k for k in range(2, 64) if smallest_p(k, two_sided) < alpha), None)
