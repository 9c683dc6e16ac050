"""forms.hw subpackage."""
