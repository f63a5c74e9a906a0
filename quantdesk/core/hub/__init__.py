"""The Hugging Face Hub: search, a repo's files grouped, and resumable verified downloads."""
