"""ragchat: a self-hosted RAG chatbot. Ask your documents; get cited answers from your own LLM."""

__version__ = "0.1.0"
