"""The MCP server: Atelier's workflows and jobs as tools for AI assistants.

``tools.build_server`` makes the server over any way of reaching Atelier through the SDK;
``atelier mcp`` runs it over stdio against a URL (``stdio.py``), and the app serves it
over streamable HTTP at ``/mcp`` (``atelier.api.mcp_endpoint``). docs/MCP.md.
"""
