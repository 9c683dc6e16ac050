"""Which training images a compression run validates on, given the float model's recorded hold-out.

:func:`resolve_validation` turns the spec's ``validation_images`` / ``validation_seed`` /
``validation_pool`` (each may be unset) into an explicit :class:`~forms.nn.holdout.Holdout`:

- unset ``validation_images``: the float model's hold-out when it recorded one with images
  (``forms train --validation-images``), else none;
- unset ``validation_seed`` / ``validation_pool``: those of the float model's hold-out when it
  recorded one with images, else the run's ``seed`` and training set (``train_subset``).

When the float model held images out, a hold-out that includes any image it trained on is refused
(:class:`~forms.errors.ConfigError` naming both settings): validating there would overstate the
accuracy. A float checkpoint without a record (written before it existed) or with an empty one saw
every training image; its runs keep today's hold-out, flagged ``validation_seen_by_float_model``.
The resolved values are written back into the spec, so the run's resume key and ``metrics.json``
name the images exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from forms.compress.spec import CompressSpec
from forms.errors import ConfigError
from forms.nn.holdout import Holdout


@dataclass(frozen=True)
class ValidationPlan:
    """The resolved spec of a run, its hold-out, and whether the float model trained on those images."""

    spec: CompressSpec
    """The run's spec with ``validation_images`` (and, from a recorded hold-out, seed and pool) set."""
    holdout: Holdout
    """The held-out training images (``images`` 0: none)."""
    train_length: int
    """The run trains on the first ``train_length`` training images, minus the held-out ones."""
    seen_by_float_model: bool | None
    """True when the float model may have trained on the validation images (it recorded no hold-out),
    False when they are within its hold-out, None without validation images."""


def resolve_validation(spec: CompressSpec, recorded: Holdout | None, train_images: int) -> ValidationPlan:
    """The validation plan of ``spec`` for a float model that recorded ``recorded`` (None: no record),
    on a training split of ``train_images`` examples; refuses a hold-out the float model trained on."""
    length = train_images if spec.train_subset is None else min(spec.train_subset, train_images)
    float_held = recorded if recorded is not None and recorded.images > 0 else None
    images = spec.validation_images
    if images is None:
        images = float_held.images if float_held is not None else 0
    seed, pool = spec.validation_seed, spec.validation_pool
    if float_held is not None:
        seed = float_held.seed if seed is None else seed
        pool = float_held.pool if pool is None else pool
    holdout = Holdout(images, spec.seed if seed is None else seed, length if pool is None else pool)
    if images and float_held is not None:
        _check_unseen(holdout, float_held)
    update = {"validation_images": images, "validation_seed": seed, "validation_pool": pool}
    seen = None if images == 0 else float_held is None
    return ValidationPlan(spec.model_copy(update=update), holdout, length, seen)


def _check_unseen(holdout: Holdout, float_held: Holdout) -> None:
    """Raise :class:`ConfigError` unless every image of ``holdout`` is one the float model held out."""
    trained_on = holdout.indices() - float_held.indices()
    if not trained_on:
        return
    raise ConfigError(
        f"compress validation_images={holdout.images} (validation_seed {holdout.seed}, validation_pool "
        f"{holdout.pool}) would validate on {len(trained_on)} images the float model trained on: forms "
        f"train held out {float_held.describe()} (its --validation-images {float_held.images}, --seed "
        f"{float_held.seed}). Leave validation_images, validation_seed and validation_pool unset (no "
        "--validation-images; in a forms search config, compress: {validation_images: null}) "
        "to validate on the float model's held-out images, choose at most "
        f"{float_held.images} with the same seed and pool, or set validation_images 0 to hold none out"
    )
