"""The generator as a plug-in of the loop: the agent the loop calls (:mod:`.agent`), the SIGnAL-only
pieces of a round (:mod:`.round`: synthetic items, D_RL, statistics) and the held-out comparison of
a new adapter with the base model (:mod:`.heldout`)."""
