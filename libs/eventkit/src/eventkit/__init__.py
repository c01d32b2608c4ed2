"""Event platform: no domain knowledge, only events, streams, feeds and projections."""
