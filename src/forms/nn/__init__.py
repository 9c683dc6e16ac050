"""forms.nn subpackage."""
