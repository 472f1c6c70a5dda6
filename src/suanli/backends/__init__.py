"""Adapters to each site's own scheduler, behind one interface. They know nothing of policies."""
