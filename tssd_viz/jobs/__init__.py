"""The job queue: runs submitted from the dashboard or a sweep, started locally or on Ray."""
