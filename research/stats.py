"""The small test-statistic record shared by the event-study engine and the hypotheses."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TestStat:
    """One hypothesis test.

    Parameters
    ----------
    name : str
        Test name, e.g. ``"patell"``.
    stat : float
        The test statistic.
    pvalue : float
        Two-sided p-value unless ``alternative`` says otherwise.
    df : float or None
        Degrees of freedom where the reference distribution has them.
    null : str
        The null hypothesis in words, e.g. ``"CAAR = 0"``.
    dist : str
        Reference distribution (``"t"``, ``"normal"``, ``"binomial"``, ``"permutation"``, ...).
    alternative : str
        ``"two-sided"``, ``"greater"`` or ``"less"``.
    """

    __test__ = False  # not a pytest test class

    name: str
    stat: float
    pvalue: float
    df: float | None = None
    null: str = ""
    dist: str = ""
    alternative: str = "two-sided"

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        df = "" if self.df is None else f", df={self.df:g}"
        return f"{self.name}: stat={self.stat:.4f}, p={self.pvalue:.4g}{df} (H0: {self.null})"
