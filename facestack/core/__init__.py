"""What every service shares: config files, tokens and roles, audit, TLS, errors, safe JSON, fetches."""
