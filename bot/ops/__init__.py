"""The runbook's operator tooling behind `psychochauffeur`: health, perf, db, audit, config and admins."""
