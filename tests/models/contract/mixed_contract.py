"""A contract with every kind of field (two entities, categories of text and of numbers, one
refusing and one mapping unseen values to ``other``, an integer, a boolean, an optional number
with a cohort): what the tools must handle beyond the default contract's five fields."""

from __future__ import annotations

from models.contract import parse_contract

MIXED_YAML = """
target: {column: minutes, maximum: 240}
timestamp: {column: ordered_at}
fields:
  store_id: {kind: entity, example: s_001, key: store}
  weather:
    kind: category
    values: [sunny, rain, fog]
    example: rain
    cohort: {dimension: weather}
  vehicle: {kind: category, values: [bike, car], on_unseen: other, example: car}
  city_tier: {kind: category, values: [1, 2, 3], example: 2}
  items:
    kind: integer
    minimum: 1
    maximum: 40
    example: 3
    cohort: {dimension: basket, edges: [5, 10]}
  festival: {kind: boolean, example: false, cohort: {dimension: festival}}
  rating: {kind: number, minimum: 1, maximum: 5, example: 4.5, required: false, default: 4.0}
  courier_id: {kind: entity, example: c_17}
"""
MIXED = parse_contract(MIXED_YAML)
