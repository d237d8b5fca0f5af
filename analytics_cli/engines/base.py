"""The protocols every engine implements, and the reading rules they share.

Implementations import this module; nothing here imports an implementation.
"""

from __future__ import annotations

# --- Engine and Source: connecting, the consistent read-only snapshot --------------------

# --- Store: the analytics table behind one interface -------------------------------------
