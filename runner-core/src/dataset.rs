//! Loading tasks from a dataset file (JSON array or JSONL).
