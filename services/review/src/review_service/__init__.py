"""审核: two-tier review queue, decisions, reviewer UI."""
