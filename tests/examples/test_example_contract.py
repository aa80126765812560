"""The README's example contract is what `make contract` drafts from the rich-orders export,
plus the edits it marks: it cannot drift from the drafter or the generator unnoticed."""

from __future__ import annotations

from pathlib import Path

from examples.rich_orders import rich_orders, write_orders
from models.contract import CategoryField, load_contract
from models.contract.draft import draft_contract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rich_orders.contract.yaml"


def test_the_example_contract_is_the_draft_of_the_example_export(tmp_path: Path) -> None:
    example = load_contract(EXAMPLE)
    orders = tmp_path / "orders.csv"
    write_orders(rich_orders(rows=60_000), orders)
    drafted = draft_contract(orders).contract

    assert list(example.fields) == list(drafted.fields)
    assert example.target.column == drafted.target.column
    assert example.timestamp.column == drafted.timestamp.column
    for name, spec in example.fields.items():
        assert spec.kind == drafted.fields[name].kind, name
        if isinstance(spec, CategoryField):
            assert spec.values == drafted.fields[name].values, name  # type: ignore[union-attr]
    # The edits the file marks: cohorts on distance and weather, the rating scale.
    assert set(example.cohort_dimensions) == {"distance", "weather", "entity"}
    assert example.fields["driver_rating"].maximum == 5  # type: ignore[union-attr]
    assert "# edited:" in EXAMPLE.read_text()
