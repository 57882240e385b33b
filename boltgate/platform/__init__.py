"""Platform routes of the Lightning Enable API that belong to no merchant: the MCP version check,
the operator's privacy policy and terms, and public download counts."""
