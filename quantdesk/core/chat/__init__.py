"""Chat: the engine around llama.cpp, chat templates, and conversations kept in SQLite."""
