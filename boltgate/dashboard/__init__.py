"""The merchant dashboard: server-rendered pages under ``/dashboard`` (sessions, CSRF, charts)."""
