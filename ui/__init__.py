"""The UI: it arranges and formats; the decisions live in wrappers/ and compare/."""
