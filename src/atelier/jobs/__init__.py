"""Jobs: what the API offers (submit, read, list, cancel, retry, delete) and its views."""
