"""Group-sequential looks: replicates added in looks, only for the architectures whose answer is still open.

A design `replicates: {looks: [6, 12]}` trains the first 6 seeds of every
cell, decides, then trains seeds 7..12 only for the architectures whose
overfitting verdict is still open, and so on up to the last look. Looking at
the data and then adding replicates spends the error budget again unless the
design pays for every look, so it does:

- Every kind of claim keeps its share of the report's one budget
  (`decisions.error_budget`), and spends it over the looks by a Lan-DeMets
  spending function of the information fraction t = k_j / k_L (Lan & DeMets,
  "Discrete sequential boundaries for clinical trials", Biometrika 1983):
  O'Brien-Fleming-type, alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), which
  keeps almost all of it for the last look, or Pocock-type,
  alpha(t) = alpha ln(1 + (e - 1) t), which spends it evenly.
- The nominal level of look j, against which the look's adjusted p-values
  (the same step-down max-T families as a fixed design's) are compared, is
  the one whose crossing probability, under the canonical joint distribution
  of the looks' statistics (multivariate normal, corr(Z_i, Z_j) =
  sqrt(k_i / k_j); Jennison & Turnbull, "Group sequential methods", 2000,
  ch. 7), adds up to alpha(t_j). Two-sided kinds cross at |Z|. Computed
  with scipy's multivariate normal (Genz), seeded, cached.
- The canonical correlation is asymptotic and our tests are sign flips and a
  bootstrap on few replicates: whether the whole race keeps its 5% is
  measured, by simulation of data shaped as ours, through `race` itself
  (tests/test_sequential.py, benchmarks/calibration.py), beside naive peeking.
- An architecture stops at look j when its overfitting verdict is resolved:
  a decline at n = N ("overfits"), or N within the margin of the best n
  ("holds"). It also stops, non-bindingly, where the trend points the other
  way at half the information or later: N has the highest mean, so no
  decline to find (Wieand, Schroeder & O'Fallon, Statistics in Medicine
  1994). Non-binding: the levels ignore it, so stopping or not keeps the
  guarantee. Its claims (all kinds) are those of the look at which it
  stopped; a claim at any look is made at that look's nominal level, so
  the chance of any false claim over all looks and kinds stays within the
  budget.
- The unit of the race is the architecture (all its n and strategies):
  every test is on per-replicate differences between n, so an n left out of
  later looks would lose its pairing with the n it is compared with, and
  the best n itself can change from one look to the next.
"""

import functools
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as scipy_stats

from . import decisions, stepdown
from .stats import fine_tune_only
from .tables import epochs_computed

SPENDING = ("obrien_fleming", "pocock")
FUTILITY_FROM = 0.5  # the trend-based futility stop applies from half the information on (Wieand et al. 1994)
STATES = ("overfits", "holds", "futile", "open", "unresolved")
MVN_SEED = 0


@dataclass(frozen=True)
class Design:
    """Replicates per cell at each look (increasing), the seeds in the order they are used, the spending function."""

    looks: tuple
    seeds: tuple
    spending: str = "obrien_fleming"
    futility: bool = True

    def seeds_at(self, look: int) -> list:
        """The seeds of every cell up to look `look` (0-based)."""
        return list(self.seeds[: self.looks[look]])

    @property
    def fractions(self) -> tuple:
        return tuple(k / self.looks[-1] for k in self.looks)


def design_from_config(config: dict):
    """The sequential design of a config's `replicates:` key, or None for a fixed design (every seed at once)."""
    replicates = config.get("replicates") or {}
    if not replicates.get("looks"):
        return None
    return Design(looks=tuple(replicates["looks"]), seeds=tuple(config["seeds"]),
                  spending=replicates.get("spending", "obrien_fleming"), futility=replicates.get("futility", True))


def spent(t: float, alpha: float, spending: str) -> float:
    """Cumulative alpha spent by information fraction t (Lan & DeMets 1983)."""
    if t >= 1:
        return alpha
    if spending == "obrien_fleming":
        return float(2 - 2 * scipy_stats.norm.cdf(scipy_stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"replicates.spending: unknown spending function {spending!r} (use one of {', '.join(SPENDING)})")


def _no_crossing(bounds, correlation, two_sided: bool) -> float:
    """P(no look's statistic crosses its bound), the looks' Z canonical: multivariate normal."""
    bounds = np.asarray(bounds, float)
    if len(bounds) == 1:
        upper = scipy_stats.norm.cdf(bounds[0])
        return float(2 * upper - 1) if two_sided else float(upper)
    size = len(bounds)
    return float(scipy_stats.multivariate_normal.cdf(
        bounds, cov=correlation[:size, :size], lower_limit=-bounds if two_sided else None, abseps=1e-8,
        releps=1e-8, maxpts=200_000 * size, rng=np.random.default_rng(MVN_SEED)))


@functools.lru_cache(maxsize=256)
def nominal_levels(looks: tuple, alpha: float, spending: str, two_sided: bool) -> tuple:
    """Per look, the nominal p-value level whose crossings, over the looks, spend alpha as `spending` does.

    One-sided: reject at look j when p_j < level_j, with P(some Z_j >= z_j) =
    alpha(t_j) under the canonical joint distribution; two-sided: |Z_j|.
    """
    fractions = np.asarray(looks, float) / looks[-1]
    correlation = np.sqrt(np.minimum.outer(fractions, fractions) / np.maximum.outer(fractions, fractions))
    bounds, levels = [], []
    for t in fractions:
        target = 1 - spent(t, alpha, spending)  # P(no crossing up to this look)

        def gap(z):
            return _no_crossing(bounds + [z], correlation, two_sided) - target

        # A look that cannot spend anything (target met already) gets an infinite bound.
        z = np.inf if gap(40.0) < 0 else optimize.brentq(gap, 0.0, 40.0, xtol=1e-6)
        bounds.append(z)
        tail = scipy_stats.norm.sf(z)
        levels.append(float(2 * tail if two_sided else tail))
    return tuple(levels)


def look_budget(design: Design, look: int, budget: dict, two_sided: dict) -> dict:
    """{kind: the nominal level of look `look`} for a report whose budget over all looks is `budget`."""
    return {kind: nominal_levels(design.looks, alpha, design.spending, two_sided[kind])[look]
            for kind, alpha in budget.items()}


def decline_floor(replicates: int) -> float:
    """The smallest adjusted p a decline test on `replicates` replicates can give, whatever the data.

    A one-sided step-down p is (1 + exceedances) / (1 + draws) in both of its
    randomisations, and the claim needs the larger: the observed signs are one
    of the 2**k sign patterns, so the sign flips give at least 1 / 2**k, and
    the bootstrap at least 1 / (1 + resamples).
    """
    return max(1 / (1 + len(stepdown.sign_patterns(replicates))), 1 / (1 + stepdown.RESAMPLES))


def looks_without_decline(looks: pd.DataFrame) -> pd.DataFrame:
    """The looks of a race's `looks` table at which no decline could be resolved: their level is below the floor.

    Such a look can stop an architecture only for equivalence or futility.
    O'Brien-Fleming-type spending keeps little for early looks: with the
    report's 0.035 for declines, looks at 6 and 12 replicates give look 1 a
    level of 0.0029, under six replicates' floor 1/64; looks at 8 and 12 give
    0.0098, above eight's 1/256.
    """
    unique = looks.drop_duplicates("look")[["look", "replicates", "alpha_overfits"]].copy()
    unique["floor"] = [decline_floor(int(k)) for k in unique["replicates"]]
    return unique[unique["floor"] >= unique["alpha_overfits"]].reset_index(drop=True)


def state(point: pd.Series, compared: pd.DataFrame, design: Design, look: int) -> str:
    """An architecture's state after a look: overfits, holds, futile, open, or unresolved (after the last)."""
    at_max_n = compared.set_index("n").sort_index().iloc[-1]
    others = compared[compared["n"] != at_max_n.name]
    if point["overfits"]:
        return "overfits"
    if at_max_n["verdict"] == "equivalent" or (at_max_n["verdict"] == "best"
                                                and others["verdict"].isin(["worse", "equivalent"]).all()):
        return "holds"
    last = look == len(design.looks) - 1
    if (not last and design.futility and design.fractions[look] >= FUTILITY_FROM
            and int(point["best_n"]) == int(at_max_n.name)):
        return "futile"
    return "unresolved" if last else "open"


def data_at(finals: pd.DataFrame, design: Design, look: int, architectures) -> pd.DataFrame:
    """The rows look `look` (0-based) sees: every seed up to it, of `architectures` (those still open)."""
    seeds = design.seeds_at(look)
    return finals[finals["architecture"].isin(architectures) & finals["seed"].isin(seeds)]


def complete(finals: pd.DataFrame, design: Design, look: int) -> bool:
    """Whether every architecture in `finals` has a row for every (strategy, n) of every seed of this look."""
    for _, rows in finals.groupby("architecture", sort=False):
        grid = rows.drop_duplicates([c for c in ("strategy", "n") if c in rows.columns])
        if len(rows) < len(grid) * design.looks[look]:
            return False
    return True


def race(finals: pd.DataFrame, design: Design, margin: float) -> dict:
    """The decisions of a sequential design, replayed look by look on a finals table: `decisions.analyze`'s tables.

    Look j sees the first k_j seeds of the architectures still open; its
    tables are those of a fixed design of them at the look's nominal levels
    (`decisions.analyze_fixed`).
    Each architecture's rows come from the look at which it stopped (or the
    last look its data reach: a run still going). Extra tables: `looks` (one
    row per architecture and look it took part in) and, in `overfitting`,
    look, state, runs and epochs against a fixed design of the last look's
    replicates.
    """
    decisions.check_columns(finals)
    budget = decisions.report_budget(finals)
    architectures = list(fine_tune_only(finals)["architecture"].unique())
    finals = finals[finals["seed"].isin(design.seeds)]
    stopped, at_look, history = {}, {}, []
    for look in range(len(design.looks)):
        still = [arch for arch in architectures if arch not in stopped]
        seen = data_at(finals, design, look, still)
        if not still or not complete(seen, design, look):
            break
        levels = look_budget(design, look, budget, decisions.TWO_SIDED)
        # Only the open architectures: a stopped one's claims are those of its stopping look, and its rows, on
        # fewer replicates, would weigh down every later family's max-T with their heavier tails.
        tables = decisions.analyze_fixed(seen, margin, levels)
        points = tables["overfitting"].set_index("architecture")
        for arch in still:
            compared = tables["comparison"][tables["comparison"]["architecture"] == arch]
            now = state(points.loc[arch], compared, design, look)
            history.append(dict(architecture=arch, look=look + 1, replicates=design.looks[look], state=now,
                                decline_from_n=points.loc[arch, "decline_from_n"],
                                decline=points.loc[arch, "decline_at_max_n"], p_decline=points.loc[arch, "p_decline"],
                                alpha_overfits=levels["overfits"], alpha_worse=levels["worse"],
                                alpha_equivalent=levels["equivalent"]))
            at_look[arch] = (look, tables)
            if now != "open":
                stopped[arch] = look
    if not at_look:
        raise ValueError(f"sequential design: the first look needs {design.looks[0]} replicates of every cell "
                         f"(seeds {', '.join(map(str, design.seeds_at(0)))})")
    parts = {name: [] for name in ("comparison", "overfitting", "strategies")}
    for arch in architectures:
        look, tables = at_look[arch]
        for name in parts:
            table = tables[name]
            parts[name].append(table[table["architecture"] == arch])
    result = {name: pd.concat(rows, ignore_index=True) for name, rows in parts.items()}
    looks = pd.DataFrame(history)
    last = looks.groupby("architecture", sort=False).last()
    points = result["overfitting"]
    points["look"] = points["architecture"].map(last["look"]).astype(int)
    points["looks"] = len(design.looks)
    points["state"] = points["architecture"].map(last["state"])
    points["spending"] = design.spending
    for arch in architectures:
        used = data_at(finals, design, at_look[arch][0], [arch])
        runs, k = len(used), used["seed"].nunique()
        epochs = epochs_computed(used)[0] if "epochs_trained" in used.columns else np.nan
        row = points["architecture"] == arch
        points.loc[row, "runs"] = runs
        points.loc[row, "runs_fixed"] = runs * design.looks[-1] // k
        points.loc[row, "epochs"] = epochs
        points.loc[row, "epochs_fixed"] = epochs * design.looks[-1] / k
    result["looks"] = looks
    result["budget"] = budget
    return result


def look_decisions(finals: pd.DataFrame, design: Design, look: int, margin: float) -> dict:
    """What checkpoint look writes after look `look` (1-based): each architecture's state and its next seeds.

    The race is replayed from the first look on the cells so far, so the
    decisions are those the report will make.
    """
    looks = race(finals, design, margin)["looks"]
    reached = int(looks["look"].max())
    if reached != look:
        raise ValueError(f"look {look}: the cells given reach look {reached}")
    last = looks.groupby("architecture", sort=False).last()
    seeds = {arch: design.seeds_at(look if row["state"] == "open" else int(row["look"]) - 1)
             for arch, row in last.iterrows()}
    return dict(look=look, replicates=design.looks[look - 1], states=last["state"].to_dict(), seeds=seeds,
                looks=json.loads(looks.to_json(orient="records")))
