"""The ``role`` label of the model metrics: which of the loaded models a series is about."""

from typing import Literal

Role = Literal["champion", "challenger"]
CHAMPION: Role = "champion"
CHALLENGER: Role = "challenger"
ROLES: tuple[Role, ...] = (CHAMPION, CHALLENGER)
"""``role`` label values: the model whose answers clients get, and the shadow's challenger."""
