"""Typed, validated specifications shared by every part of FORMS.

Every spec is a pydantic model that refuses unknown keys, validates each field on load, and
round-trips through YAML/JSON. Errors name the field, the value and the allowed range, so a
malformed config file fails at load time instead of deep inside a run. Rules every spec shares: a
boolean is not a number (YAML reads ``yes``/``true`` as booleans, which pydantic would turn into 1),
a seed is a 32-bit unsigned integer, and a YAML file must be UTF-8 and name each key once.

Subsystems define their own specs (``forms.compress.spec``, ``forms.sim.spec``, ``forms.cost.arch``,
...) on top of :class:`Spec`; the crossbar geometry lives here because compression and hardware must
agree on it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from forms.errors import ConfigError
from forms.io import read_text_file

SEED_LIMIT = 2**32
"""Seeds are integers in [0, 2**32): derived seeds (a simulated chip's layer n draws from
seed x 1,000,003 + n) must stay inside the 64-bit range torch generators accept."""


class Spec(BaseModel):
    """Base of every FORMS configuration object: strict keys, validated fields, YAML round trip."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _boolean_only_where_boolean(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse a boolean for a field that is not boolean (pydantic would read ``true`` as 1)."""
        if not isinstance(value, bool):  # the common case first: model_fields is slow to reach
            return value
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and not _admits_bool(field.annotation):
            raise ValueError(f"a boolean ({str(value).lower()}) is not a value of this field")
        return value

    @field_validator("seed", check_fields=False)
    @classmethod
    def _seed_in_range(cls, value: int) -> int:
        """Refuse a seed outside [0, SEED_LIMIT)."""
        if isinstance(value, int) and not 0 <= value < SEED_LIMIT:
            raise ValueError(f"a seed must be an integer from 0 to {SEED_LIMIT - 1}")
        return value

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


def _admits_bool(annotation: Any) -> bool:
    """True when a field annotated ``annotation`` takes booleans (bool, Any, a union or Literal with one)."""
    if annotation is bool or annotation is Any or isinstance(annotation, bool):
        return True
    return any(_admits_bool(arg) for arg in get_args(annotation))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming the same key twice (safe_load keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """The mapping of ``node``; a ConstructorError at the second occurrence of a key."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden by design
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (each key may appear once)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a UTF-8 YAML file that must hold a mapping with unique keys; :class:`ConfigError` otherwise."""
    p = Path(path)
    stream = io.StringIO(read_text_file(p, "config file"))
    stream.name = str(p)  # YAML error marks then say where: in "<path>", line L, column C
    try:
        data = yaml.load(stream, Loader=_UniqueKeyLoader)
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
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"  - {loc}: {message} (got {err.get('input')!r})")
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
