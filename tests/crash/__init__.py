"""crash tests."""
