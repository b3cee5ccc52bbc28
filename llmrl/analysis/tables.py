"""Tables (markdown and LaTeX) from the statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def latex(df: pd.DataFrame, caption: str = "") -> str:
    cols = list(df.columns)
    body = [" & ".join(_fmt(row[c]).replace("_", r"\_") for c in cols) + r" \\" for _, row in df.iterrows()]
    head = " & ".join(c.replace("_", r"\_") for c in cols) + r" \\"
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule", head,
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]) + "\n"


def final_score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean +- std of the final score per method (rows) and env (columns), with run counts."""
    g = scores.groupby(["method", "env"])["score"].agg(["mean", "std", "size"]).reset_index()
    g["cell"] = [f"{m:.4g} ± {0.0 if np.isnan(s) else s:.2g} (n={n})" for m, s, n in zip(g["mean"], g["std"], g["size"])]
    return g.pivot(index="method", columns="env", values="cell").reset_index().fillna("-")
