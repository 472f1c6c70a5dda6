"""Session fixture for the real Ray head of scripts/services.sh (filled in with the Ray back-end)."""
