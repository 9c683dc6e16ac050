"""forms.report subpackage."""
