"""Who is calling and what they may do: API keys, scopes, signed links, limits, audit."""
