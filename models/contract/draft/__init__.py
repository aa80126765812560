"""Draft a feature contract from a user's order history (``make contract DATA=...``).

Each column of the file becomes a request field of the kind its values suggest -- or is left
out, with the reason written in the draft -- and the target and timestamp columns are detected
(or named with ``--target`` / ``--timestamp``). The draft is YAML text with comments saying what
was inferred from how many rows; it is validated with
:func:`~models.contract.loading.parse_contract` before it is returned, so it trains as is. A
person reviews and edits it; docs/contract.md is the reference.

The rules, in order, for each column other than the target and the timestamp:

- a name that is not a contract name (snake_case) is left out (the contract names the column);
- a time is left out (a request carries no order time; derive e.g. the hour in the export);
- numbers: one value -> left out; only 0 and 1 -> ``boolean``; whole numbers -> ``integer``,
  others -> ``number``, with the observed range widened by :data:`RANGE_MARGIN` of its width on
  each side (not below 0 for a column with no negative value); an ``*_id`` column of whole
  numbers is treated as ids (below); whole numbers all distinct -> left out (a row id); a column
  that follows the target almost exactly -> left out (known only after delivery);
- true/false text -> ``boolean``;
- text (and ids): an ``*_id`` column, or one with more distinct values than the cap, whose
  values are valid entity ids repeated at least :data:`ENTITY_MIN_MEDIAN_ORDERS` times (median)
  -> ``entity``; otherwise at most the cap of distinct values -> ``category``, its values by
  frequency, values in under :data:`RARE_SHARE` of rows left to ``on_unseen: other``; more
  values -> ``category`` of the frequent values if they cover :data:`CROPPED_CATEGORY_COVERAGE`
  of the rows, else left out (free text, or ids seen too rarely);
- a column empty in some rows is drafted optional with its typical value as the default; one
  empty in most rows is left out.

The modules, in the order a draft runs through them:

- :mod:`.reading`: the file(s), streamed once -> a uniform :class:`Sample` and, per column,
  :class:`ColumnTotals` over every row;
- :mod:`.profiling`: a sampled column -> its :class:`Profile` (numbers, flag, times, text with
  :class:`TextCounts`);
- :mod:`.roles`: which column is the target and which the timestamp;
- :mod:`.rules`: each other column -> a :class:`DraftedField` or a :class:`LeftOut` (names,
  times, emptiness, numbers and flags), with :mod:`.categories` for text and ids and
  :mod:`.fields` for what they produce;
- :mod:`.rendering`: the commented YAML;
- :mod:`.drafting`: :func:`draft_contract` / :func:`draft_from_sample`, which run the above and
  validate the text into a :class:`Draft`; :mod:`.errors`: :class:`DraftError`.
"""

from models.contract.draft.categories import (
    CROPPED_CATEGORY_COVERAGE,
    DEFAULT_MAX_CATEGORIES,
    ENTITY_MIN_MEDIAN_ORDERS,
    ID_NAME,
    RARE_SHARE,
)
from models.contract.draft.drafting import Draft, draft_contract, draft_from_sample
from models.contract.draft.errors import DraftError
from models.contract.draft.fields import DraftedField, LeftOut
from models.contract.draft.profiling import (
    MAX_BAD_SHARE,
    NOT_A_NUMBER_TEXT,
    PROBE_VALUES,
    Profile,
    TextCounts,
    profile_column,
)
from models.contract.draft.reading import (
    DEFAULT_MAX_ROWS,
    MAX_COLUMNS_READ,
    SAMPLE_SEED,
    TRACKED_VALUES,
    ColumnTotals,
    Sample,
    read_sample,
)
from models.contract.draft.rendering import render_yaml
from models.contract.draft.roles import PREFERRED_TARGETS, PREFERRED_TIMESTAMPS, TARGET_NAME
from models.contract.draft.rules import LEAK_CORRELATION, MOST_EMPTY_SHARE, RANGE_MARGIN

__all__ = [
    "CROPPED_CATEGORY_COVERAGE",
    "DEFAULT_MAX_CATEGORIES",
    "DEFAULT_MAX_ROWS",
    "ENTITY_MIN_MEDIAN_ORDERS",
    "ID_NAME",
    "LEAK_CORRELATION",
    "MAX_BAD_SHARE",
    "MAX_COLUMNS_READ",
    "MOST_EMPTY_SHARE",
    "NOT_A_NUMBER_TEXT",
    "PREFERRED_TARGETS",
    "PREFERRED_TIMESTAMPS",
    "PROBE_VALUES",
    "RANGE_MARGIN",
    "RARE_SHARE",
    "SAMPLE_SEED",
    "TARGET_NAME",
    "TRACKED_VALUES",
    "ColumnTotals",
    "Draft",
    "DraftError",
    "DraftedField",
    "LeftOut",
    "Profile",
    "Sample",
    "TextCounts",
    "draft_contract",
    "draft_from_sample",
    "profile_column",
    "read_sample",
    "render_yaml",
]
