"""Matching sequence names across annotation and result files.

The OTB toolkit ships `jogging-1.txt` and `Human4.txt`; result sets call the same sequences
`Jogging-1`, `jogging_1`, `Human4-2`. Matching on a canonical form (lower case, letters and digits
only) handles case and punctuation; a trailing target number (`-2`, `_2`) is dropped only as a
fallback and only when that makes the match unique.
"""
import re

_TARGET_SUFFIX = re.compile(r"^(.+?)[-_.](\d+)$")


def canonical(name):
    return re.sub(r"[^0-9a-z]", "", name.lower())


def base_name(name):
    """Name without a trailing target number: 'Human4-2' -> 'Human4', 'Jogging_1' -> 'Jogging'."""
    m = _TARGET_SUFFIX.match(name)
    return m.group(1) if m else name


def match_names(wanted, available):
    """Map each name in `wanted` to one name in `available` (or leave it out when none fits)."""
    by_canon = {}
    for a in sorted(available):
        # An exact spelling wins over another file with the same canonical form.
        by_canon.setdefault(canonical(a), a)
    result = {}
    used = set()
    for w in wanted:
        a = by_canon.get(canonical(w))
        if a is not None:
            result[w] = a
            used.add(a)
    left = [a for a in sorted(available) if a not in used]
    for w in wanted:
        if w in result:
            continue
        cw, bw = canonical(w), canonical(base_name(w))
        candidates = [a for a in left
                      if canonical(base_name(a)) == cw or (bw != cw and canonical(a) == bw)]
        if len(candidates) == 1:
            result[w] = candidates[0]
            left.remove(candidates[0])
    return result
