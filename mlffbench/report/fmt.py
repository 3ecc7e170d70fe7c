"""Numbers as a reader sees them: 3 significant digits, the spread (`std`) as ±, no unit '1'.

Relative errors (dimensionless metrics whose name contains 'rel') are shown in percent; the
report JSON keeps the stored value and unit.
"""

from __future__ import annotations

import math


def fmt_num(x, digits: int = 3) -> str:
    """A number in `digits` significant digits (scientific outside 1e-3..1e5); 'n/a' for None/NaN."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt_num(v, digits) for v in x) + "]"
    if isinstance(x, (int, float)):
        if not math.isfinite(x):
            return "n/a" if math.isnan(x) else ("∞" if x > 0 else "-∞")
        if isinstance(x, int) and abs(x) < 1e6:
            return str(x)
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def is_percent(name: str, unit: str | None) -> bool:
    """Shown in percent: a dimensionless relative error (name contains 'rel')."""
    return unit == "1" and "rel" in name


def display_unit(unit: str | None) -> str:
    """The unit as printed after a number: '' for dimensionless."""
    return "" if unit in (None, "", "1") else str(unit)


def fmt_pm(value: float, std: float | None) -> str:
    """'value ± std': std in 2 significant digits, value rounded to the same decimal place; a std
    below 1e-12 (round-off of identical samples) is not shown."""
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 1e-12):
        return fmt_num(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 1e-4 <= std < 1e5:
        return f"{fmt_num(value)} ± {fmt_num(std, 2)}"
    decimals = max(0, 1 - math.floor(math.log10(std)))
    return f"{value:.{decimals}f} ± {std:.{decimals}f}"


def fmt_quantity(q: dict, name: str = "") -> str:
    """'value ± std unit' of a {'value', 'unit', 'std'?} entry (percent for relative errors)."""
    unit = q.get("unit")
    scale, shown = (100.0, "%") if is_percent(name, unit) else (1.0, display_unit(unit))
    v = q.get("value")
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    std = q.get("std")
    text = fmt_pm(v * scale, std * scale if isinstance(std, (int, float)) else None) if number else fmt_num(v)
    return f"{text} {shown}".strip()


def spread_note(q: dict, name: str = "") -> str:
    """A one-line description of the spread of a quantity (n, 95 % interval), '' when it has none."""
    parts = []
    if "n" in q:
        parts.append(f"n = {q['n']}")
    ci = q.get("ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        scale = 100.0 if is_percent(name, q.get("unit")) else 1.0
        unit = "%" if scale == 100.0 else display_unit(q.get("unit"))
        parts.append(f"95 % interval [{fmt_num(ci[0] * scale)}, {fmt_num(ci[1] * scale)}] {unit}".rstrip())
    return "; ".join(parts)


def pretty_name(key: str) -> str:
    """'lattice_constant_rel_error' -> 'lattice constant rel error'."""
    return key.replace("_", " ")
