"""One unit for accuracy wherever a person reads it: percent with one decimal, differences in percentage points.

The CSV tables keep accuracies as fractions (0.7176), as computed; the HTML
report, its sentences, the LaTeX tables and the figures' axes show them
through these helpers, so that every place prints the same number the same
way: 71.8% for an accuracy, −7.3 pts for a difference between two.
"""

import pandas as pd

DECIMALS = 1
MINUS = "\u2212"  # the typographic minus sign, in the HTML report and its sentences
MISSING = "–"
POINTS = " pts"


def accuracy(x, *, signed: bool = False, unit: str = "%", minus: str = MINUS, missing: str = MISSING,
             decimals: int = DECIMALS) -> str:
    """A fraction of correct answers (or a difference of two) in percent, with `decimals` decimals and `unit` after it.

    `signed` puts + before a positive number (differences); a number that
    rounds to zero has no sign. NaN (or None) gives `missing`. Only the
    figures' tick labels ask for other decimals than DECIMALS.
    """
    if pd.isna(x):
        return missing
    value = round(100 * float(x), decimals) + 0.0  # + 0.0: no "-0.0"
    text = f"{value:{'+' if signed and value else ''}.{decimals}f}"
    return text.replace("-", minus) + unit


def percent(x) -> str:
    """An accuracy: 0.7176 -> '71.8%'."""
    return accuracy(x)


def points(x, signed: bool = True) -> str:
    """A difference between accuracies, in percentage points: -0.0731 -> '−7.3 pts' (signed), or a spread (unsigned)."""
    return accuracy(x, signed=signed, unit=POINTS)


def percent_range(low, high) -> str:
    """An interval of accuracies: '75.0% to 81.0%'."""
    return f"{percent(low)} to {percent(high)}"


def points_range(low, high) -> str:
    """An interval of a difference: '−1.2 to +3.4 pts'."""
    return f"{accuracy(low, signed=True, unit='')} to {points(high)}"


def margin(x) -> str:
    """An equivalence margin (a fraction of accuracy, from the config) in points: 0.01 -> '±1.0 pts'.

    A config value is shown as given: one decimal where that is exact, more where it is not.
    """
    value = 100 * float(x)
    text = f"{value:.{DECIMALS}f}" if abs(value - round(value, DECIMALS)) < 1e-9 else f"{value:g}"
    return f"±{text}{POINTS}"
