"""net: the shared HTTP client with its SSRF guard, and the OpenAI-compatible chat client."""
