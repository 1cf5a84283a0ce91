"""The operators' back office at /backoffice: staff accounts, audit log, support and admin tools."""
