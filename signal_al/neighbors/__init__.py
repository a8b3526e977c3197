"""Nearest labeled neighbours and the maths that strategies and the SIGnAL score share: the faiss kNN
index (:mod:`.knn`), KL divergences to the neighbours' predictions (:mod:`.divergence`) and the checks
of probability and embedding arrays (:mod:`.validation`). Functions of arrays only."""
