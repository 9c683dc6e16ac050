"""forms.compress subpackage."""
