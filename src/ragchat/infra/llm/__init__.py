"""Chat LLMs behind one small interface; one OpenAI-compatible implementation serves vLLM and OpenAI."""
