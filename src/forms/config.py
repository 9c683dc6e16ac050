"""Typed, validated specifications shared by every part of FORMS.

Every spec is a pydantic model that refuses unknown keys, validates each field on load, and
round-trips through YAML/JSON. Errors name the field, the value and the allowed range, so a
malformed config file fails at load time instead of deep inside a run.

Subsystems define their own specs (``forms.compress.spec``, ``forms.sim.spec``, ``forms.cost.arch``,
...) on top of :class:`Spec`; the crossbar geometry lives here because compression and hardware must
agree on it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forms.errors import ConfigError


class Spec(BaseModel):
    """Base of every FORMS configuration object: strict keys, validated fields, YAML round trip."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Self:
        """Validate ``data`` into this spec; raise :class:`ConfigError` naming each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, cls, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Load and validate a YAML file; a missing file, bad YAML or a bad field is a ConfigError."""
        data = load_yaml_mapping(path)
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        """Serialize to YAML that :meth:`from_yaml` reads back to an equal object."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def replace(self, **changes: Any) -> Self:
        """Return a validated copy with some fields changed."""
        return type(self).from_dict({**self.model_dump(), **changes}, source="replace()")


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; raise :class:`ConfigError` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist (check the path)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def format_validation_error(exc: ValidationError, spec: type[BaseModel], source: str) -> str:
    """Turn a pydantic error into one readable message per bad field."""
    lines = [f"invalid {spec.__name__} in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = f" (allowed keys: {', '.join(spec.model_fields)})" if len(err["loc"]) == 1 else ""
            lines.append(f"  - unknown key '{loc}'{hint}")
        else:
            lines.append(f"  - {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


CROSSBAR_ROWS = 128
"""Default word lines per crossbar: ISAAC's 128 x 128 arrays (Shafiee et al., ISCA 2016, Table I),
which FORMS keeps (Yuan et al., ISCA 2021)."""
CROSSBAR_COLS = 128
"""Default bit lines per crossbar (ISAAC Table I, 128 x 128)."""
CELL_BITS = 2
"""Default bits per ReRAM cell: ISAAC's 2-bit cells (Table I)."""
FRAGMENT_SIZE = 8
"""Default R: fragments of 8 rows, the forms-8 design (FORMS evaluates several R; 8 is one of them)."""


class CrossbarSpec(Spec):
    """Geometry of one ReRAM crossbar and how weights are laid on it (docs/design.md)."""

    rows: int = Field(
        CROSSBAR_ROWS, ge=1, le=4096, description="Word lines (inputs) per crossbar (ISAAC Table I: 128)."
    )
    cols: int = Field(
        CROSSBAR_COLS, ge=1, le=4096, description="Bit lines (outputs) per crossbar (ISAAC Table I: 128)."
    )
    cell_bits: int = Field(
        CELL_BITS, ge=1, le=8, description="Bits stored per ReRAM cell (ISAAC Table I: 2)."
    )
    fragment_size: int = Field(
        FRAGMENT_SIZE,
        ge=1,
        description="R: consecutive rows of one column that share one sign (a fragment). Must divide rows.",
    )

    @model_validator(mode="after")
    def _fragment_divides_rows(self) -> CrossbarSpec:
        check_fragment_size(self.fragment_size, self.rows)
        return self

    def slices(self, magnitude_bits: int) -> int:
        """Cells needed to hold ``magnitude_bits`` bits: ceil(magnitude_bits / cell_bits)."""
        return math.ceil(magnitude_bits / self.cell_bits)


def check_fragment_size(fragment_size: int, rows: int) -> None:
    """Raise ValueError unless ``fragment_size`` is a positive divisor of ``rows``."""
    if fragment_size < 1 or rows % fragment_size != 0:
        divisors = [d for d in range(1, rows + 1) if rows % d == 0]
        raise ValueError(
            f"fragment size R={fragment_size} must divide the crossbar rows ({rows}); "
            f"choose one of {divisors}"
        )
